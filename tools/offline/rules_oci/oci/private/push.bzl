"""oci_push: pushes an oci_image by digest with crane, then applies tags."""

load(":util.bzl", "rlocation_path")

def _impl(ctx):
    if ctx.attr.repository and ctx.attr.repository_file:
        fail("must specify exactly one of 'repository_file' or 'repository'")
    if not ctx.file.image.is_directory:
        fail("image attribute must be a oci_image")
    if "@" in ctx.attr.repository or ":" in ctx.attr.repository.rpartition("/")[2]:
        fail("`repository` attribute should not contain digest or tag. got: %s" % ctx.attr.repository)
    files = [ctx.file.image]
    repository_file = ""
    if ctx.attr.repository_file:
        files.append(ctx.file.repository_file)
        repository_file = rlocation_path(ctx, ctx.file.repository_file)
    tags = ""
    if ctx.attr.remote_tags:
        files.append(ctx.file.remote_tags)
        tags = rlocation_path(ctx, ctx.file.remote_tags)
    executable = ctx.actions.declare_file("push_%s.sh" % ctx.label.name)
    ctx.actions.expand_template(
        template = ctx.file._push_sh_tpl,
        output = executable,
        is_executable = True,
        substitutions = {
            "{{image_dir}}": rlocation_path(ctx, ctx.file.image),
            "{{repository}}": ctx.attr.repository,
            "{{repository_file}}": repository_file,
            "{{tags}}": tags,
        },
    )
    return [DefaultInfo(executable = executable, runfiles = ctx.runfiles(files = files))]

oci_push = rule(
    implementation = _impl,
    executable = True,
    doc = """Pushes an oci_image to a registry (rules_oci 2.x's oci_push_rule, offline stand-in).

Pushes by digest with `crane push`, then applies each tag with `crane tag`;
credentials come from the Docker config file (`docker login`). Run-time flags:
`-r|--repository R` overrides the repository, `-t|--tag T` adds a tag.
""",
    attrs = {
        "image": attr.label(allow_single_file = True, mandatory = True, doc = "An oci_image."),
        "repository": attr.string(doc = "Repository, e.g. `index.docker.io/<org>/image`; no tag or digest."),
        "repository_file": attr.label(allow_single_file = True, doc = "The repository in a file."),
        "remote_tags": attr.label(allow_single_file = True, doc = "File: one tag per line."),
        "_push_sh_tpl": attr.label(default = "push.sh.tpl", allow_single_file = True),
    },
)
