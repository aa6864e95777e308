"""oci_image: an OCI image layout directory from a base image and layer tars."""

_FILE_ATTRS = ["annotations", "cmd", "created", "entrypoint", "env", "exposed_ports", "labels", "volumes"]

def _impl(ctx):
    out = ctx.actions.declare_directory(ctx.label.name)
    args = ctx.actions.args()
    args.add("--out", out.path)
    inputs = list(ctx.files.tars)
    if ctx.attr.base:
        base = ctx.file.base
        if not base.is_directory:
            fail("base must be an oci_image (an image layout directory), got %s" % base.path)
        args.add("--base", base.path)
        inputs.append(base)
    for tar in ctx.files.tars:
        args.add("--tar", tar.path)
    for attr_name in _FILE_ATTRS:
        f = getattr(ctx.file, attr_name)
        if f:
            args.add("--" + attr_name.replace("_", "-"), f.path)
            inputs.append(f)
    for attr_name in ["user", "workdir", "os", "architecture", "variant"]:
        value = getattr(ctx.attr, attr_name)
        if value:
            args.add("--" + attr_name, value)
    ctx.actions.run(
        executable = ctx.executable._builder,
        arguments = [args],
        inputs = inputs,
        outputs = [out],
        mnemonic = "OciImage",
        progress_message = "Assembling OCI image %{label}",
    )
    return [DefaultInfo(files = depset([out]), runfiles = ctx.runfiles(files = [out]))]

def _file_attr(doc):
    return attr.label(allow_single_file = True, doc = doc)

oci_image = rule(
    implementation = _impl,
    doc = "Builds an OCI image layout: rules_oci 2.x's oci_image_rule (offline stand-in).",
    attrs = {
        "base": attr.label(allow_single_file = True, doc = "An oci_image to build on."),
        "tars": attr.label_list(allow_files = [".tar", ".tar.gz", ".tgz"], doc = "Layers, in order (.tar or .tar.gz)."),
        "entrypoint": _file_attr("File: one argument per line."),
        "cmd": _file_attr("File: one argument per line."),
        "env": _file_attr("File: KEY=VALUE lines; $VAR expands from the base."),
        "labels": _file_attr("File: KEY=VALUE lines."),
        "annotations": _file_attr("File: KEY=VALUE lines."),
        "exposed_ports": _file_attr("File: one port per line, e.g. 8080/tcp."),
        "volumes": _file_attr("File: one path per line."),
        "created": _file_attr("File holding an RFC 3339 time; default the Unix epoch."),
        "user": attr.string(doc = "User (name or uid[:gid]) the container runs as."),
        "workdir": attr.string(doc = "Working directory of the container."),
        "os": attr.string(doc = "Operating system, e.g. linux (default: the base's, else linux)."),
        "architecture": attr.string(doc = "CPU architecture, e.g. amd64 (default: the base's, else amd64)."),
        "variant": attr.string(doc = "CPU variant, e.g. v8."),
        "_builder": attr.label(default = ":image", executable = True, cfg = "exec"),
    },
)
