"""oci_load: loads an oci_image into Docker or podman, as a docker-archive."""

load(":util.bzl", "rlocation_path")

def _impl(ctx):
    if ctx.attr.format not in ("docker", "oci"):
        fail("format must be 'docker' or 'oci'")
    image = ctx.file.image
    tarball = ctx.actions.declare_file("%s/tarball.tar" % ctx.label.name)
    args = ctx.actions.args()
    args.add("--image", image.path)
    args.add("--out", tarball.path)
    args.add("--format", ctx.attr.format)
    inputs = [image]
    if ctx.file.repo_tags:
        args.add("--repo-tags", ctx.file.repo_tags.path)
        inputs.append(ctx.file.repo_tags)
    ctx.actions.run(
        executable = ctx.executable._tarball,
        arguments = [args],
        inputs = inputs,
        outputs = [tarball],
        mnemonic = "OciTarball",
        progress_message = "Writing image tarball %{output}",
    )
    files = [tarball]
    loader = ""
    if ctx.attr.loader:
        loader = rlocation_path(ctx, ctx.executable.loader)
        files.append(ctx.executable.loader)
    executable = ctx.actions.declare_file("%s.sh" % ctx.label.name)
    ctx.actions.expand_template(
        template = ctx.file._load_sh_tpl,
        output = executable,
        is_executable = True,
        substitutions = {
            "{{tarball}}": rlocation_path(ctx, tarball),
            "{{loader}}": loader,
        },
    )
    runfiles = ctx.runfiles(files = files)
    if ctx.attr.loader:
        runfiles = runfiles.merge(ctx.attr.loader[DefaultInfo].default_runfiles)
    return [
        DefaultInfo(executable = executable, runfiles = runfiles),
        OutputGroupInfo(tarball = depset([tarball])),
    ]

oci_load = rule(
    implementation = _impl,
    executable = True,
    doc = """Loads an oci_image into a container engine (rules_oci 2.x's oci_load, offline stand-in).

`bazel run` pipes the tarball into `docker load`, or `podman load` where no
Docker engine answers, or into `loader` when set. The tarball alone:
`bazel build :load --output_groups=+tarball`.
""",
    attrs = {
        "image": attr.label(allow_single_file = True, mandatory = True, doc = "An oci_image."),
        "repo_tags": attr.label(allow_single_file = True, doc = "File: one `repository:tag` per line."),
        "format": attr.string(default = "docker", doc = "`docker` (docker-archive) or `oci` (oci-archive)."),
        "loader": attr.label(executable = True, cfg = "target", doc = "Program that reads the tarball on stdin."),
        "_load_sh_tpl": attr.label(default = "load.sh.tpl", allow_single_file = True),
        "_tarball": attr.label(default = ":tarball", executable = True, cfg = "exec"),
    },
)
