"""source_subset: a part of the repository's sources, and the list of its paths.

    source_subset(
        name = "build_srcs",
        srcs = [":srcs"],
        exclude_dirs = ["tests"],
        exclude_extensions = [".md"],
    )

gives the files of `srcs` (this repository's only) minus those under an
excluded folder (a workspace path) or with an excluded extension, as runfiles, and
`<name>.txt`, their workspace-relative paths one a line. The nested-Bazel tests
copy a repository from it: leaving out what no build of theirs reads (tests,
docs) keeps them cached when only those change.

With `reached_by` (a binary) and `prune_dirs`, a file under a pruned folder is
kept only if it is in the binary's runfiles or is a BUILD or .bzl file (Bazel
loads those): a build of that binary alone reads nothing else there. A
package's BUILD file may then name sources that the copy lacks; building a
target that uses them fails with Bazel's "missing input file".
"""

_LOADED = ("BUILD", "BUILD.bazel")

def _under(f, dirs):
    return [d for d in dirs if f.short_path.startswith(d + "/")] != []

def _loaded_or_reached(f, reached):
    return f.short_path in reached or f.basename in _LOADED or f.basename.endswith(".bzl")

def _source_subset_impl(ctx):
    if ctx.attr.prune_dirs and not ctx.attr.reached_by:
        fail("prune_dirs needs reached_by: the binary whose runfiles say what to keep")
    reached = {}
    if ctx.attr.reached_by:
        for f in ctx.attr.reached_by[DefaultInfo].default_runfiles.files.to_list():
            if f.is_source and f.owner != None and f.owner.workspace_name == "":
                reached[f.short_path] = True
    kept = []
    for f in ctx.files.srcs:
        if f.owner == None or f.owner.workspace_name != "":
            continue
        if _under(f, ctx.attr.exclude_dirs):
            continue
        if f.basename.endswith(tuple(ctx.attr.exclude_extensions)):
            continue
        if _under(f, ctx.attr.prune_dirs) and not _loaded_or_reached(f, reached):
            continue
        kept.append(f)
    listing = ctx.actions.declare_file(ctx.label.name + ".txt")
    ctx.actions.write(listing, "".join([f.short_path + "\n" for f in kept]))
    return [DefaultInfo(
        files = depset([listing]),
        runfiles = ctx.runfiles(files = kept + [listing]),
    )]

source_subset = rule(
    implementation = _source_subset_impl,
    doc = "The files of `srcs` minus excluded folders and extensions, and `<name>.txt` listing them.",
    attrs = {
        "srcs": attr.label_list(allow_files = True, mandatory = True),
        "exclude_dirs": attr.string_list(doc = "Folders (workspace paths) to leave out, e.g. tests or jobs/training."),
        "exclude_extensions": attr.string_list(doc = "File name endings to leave out, e.g. .md."),
        "prune_dirs": attr.string_list(doc = "Folders (workspace paths) in which to keep only what `reached_by` runs, and BUILD and .bzl files."),
        "reached_by": attr.label(doc = "A binary: its runfiles are what `prune_dirs` keeps."),
    },
)

def package_srcs(name = "srcs", subpackages = []):
    """`name`: this package's files and its subpackages' `srcs`, for //:srcs.

    The last target of every BUILD.bazel (Bazel's own repository uses the same
    pattern); //:srcs gathers them into the repository's sources. Bytecode is
    left out, as .gitignore does: a job run outside a sandbox (MLflow saves a
    model from code) writes `__pycache__` folders into the work tree, which
    would otherwise change //:srcs and rerun the nested-Bazel tests.

    Args:
        name: the filegroup's name; //:srcs expects the default, `srcs`.
        subpackages: labels of the `srcs` of packages below this one.
    """
    native.filegroup(
        name = name,
        srcs = native.glob(["**"], exclude = ["**/__pycache__/**"]) + subpackages,
        visibility = ["//:__subpackages__"],
    )
