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
"""

def _source_subset_impl(ctx):
    kept = []
    for f in ctx.files.srcs:
        if f.owner == None or f.owner.workspace_name != "":
            continue
        if [d for d in ctx.attr.exclude_dirs if f.short_path.startswith(d + "/")]:
            continue
        if f.basename.endswith(tuple(ctx.attr.exclude_extensions)):
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
