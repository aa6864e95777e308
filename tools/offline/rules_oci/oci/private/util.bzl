"""Helpers shared by the stand-in's rules."""

def rlocation_path(ctx, f):
    """The runfiles path of `f` (`<repo>/<path>`), as the run-time scripts look it up."""
    return f.short_path[3:] if f.short_path.startswith("../") else ctx.workspace_name + "/" + f.short_path
