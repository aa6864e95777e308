"""py_image: a py_binary as an OCI image with push, load and run targets.

    py_image(name = "image", binary = ":training", image_name = "training")

makes, in the calling package:
    :layer_packages  third-party packages of the binary except torch (.tar.gz)
    :layer_app       this project's code and the launcher (.tar.gz)
    :oci_image       the image: base | torch | packages | app
    :tags            the tag file: `dev` unstamped, STABLE_VERSION when stamped
    :repository      `<registry>/slipway/<image_name>`; registry from
                     --//tools/image:registry (default localhost:5000)
    :push            `bazel run :push [-- --repository R --tag T]`
    :load            `bazel run :load`: into Docker, else podman
    :<name>          `bazel run :image [-- --norun | ARGS...]`: load, then run

The torch layer is one target (//tools/image:layer_torch) shared by every image,
so its digest, and its upload, is the same everywhere.
"""

load("@aspect_bazel_lib//lib:expand_template.bzl", "expand_template")
load("@bazel_skylib//rules:common_settings.bzl", "BuildSettingInfo")
load("@rules_oci//oci:defs.bzl", "oci_image", "oci_load", "oci_push")
load("@rules_python//python:defs.bzl", "py_binary")

# Where the launcher sits in every image; its runfiles are `<root>.runfiles/`.
LAUNCHER = "/app/main"
UNSTAMPED_TAG = "dev"

def _runfiles_path(path):
    # Runfiles paths: `_main/<path>` for this repository, `<repo>/<path>` for others.
    return path[3:] if path.startswith("../") else "_main/" + path

def _file_line(f):
    return "%s\t%s" % (_runfiles_path(f.short_path), f.path)

def _empty_line(path):
    return "%s\t" % _runfiles_path(path)

def _runfiles_layer_impl(ctx):
    info = ctx.attr.binary[DefaultInfo]
    runfiles = info.default_runfiles
    lines = ctx.actions.args()
    lines.set_param_file_format("multiline")
    lines.add_all(runfiles.files, map_each = _file_line)
    lines.add_all(runfiles.empty_filenames, map_each = _empty_line)
    executable = info.files_to_run.executable
    inputs = [runfiles.files]
    extra = []
    if executable:
        lines.add("<launcher>\t" + executable.path)
        extra.append(executable)
        mapping = info.files_to_run.repo_mapping_manifest
        if mapping:
            lines.add("_repo_mapping\t" + mapping.path)
            extra.append(mapping)
    manifest = ctx.actions.declare_file(ctx.label.name + ".manifest")
    ctx.actions.write(manifest, lines)
    out = ctx.actions.declare_file(ctx.label.name + ".tar.gz")
    ctx.actions.run(
        executable = ctx.executable._layer,
        arguments = ["runfiles", "--out", out.path, "--root", LAUNCHER, "--select", ctx.attr.select, manifest.path],
        inputs = depset([manifest] + extra, transitive = inputs),
        outputs = [out],
        mnemonic = "ImageLayer",
        progress_message = "Writing %s layer of %s" % (ctx.attr.select, ctx.attr.binary.label),
    )
    return [DefaultInfo(files = depset([out]))]

runfiles_layer = rule(
    implementation = _runfiles_layer_impl,
    doc = "One class (torch, packages or app) of a target's runfiles as a layer at " + LAUNCHER + ".runfiles.",
    attrs = {
        "binary": attr.label(mandatory = True, doc = "A py_binary, or a py_library for a shared layer."),
        "select": attr.string(mandatory = True, values = ["torch", "packages", "app"]),
        "_layer": attr.label(default = "//tools/image:layer", executable = True, cfg = "exec"),
    },
)

def _repository_impl(ctx):
    out = ctx.actions.declare_file(ctx.label.name + ".txt")
    registry = ctx.attr._registry[BuildSettingInfo].value.rstrip("/")
    ctx.actions.write(out, "%s/slipway/%s\n" % (registry, ctx.attr.image_name))
    return [DefaultInfo(files = depset([out]))]

image_repository = rule(
    implementation = _repository_impl,
    doc = "Writes `<registry>/slipway/<image_name>` (registry: --//tools/image:registry).",
    attrs = {
        "image_name": attr.string(mandatory = True),
        "_registry": attr.label(default = "//tools/image:registry"),
    },
)

def py_image(name, binary, image_name, env = {}, exposed_ports = [], kind = "job", visibility = None):
    """Image, push, load and run targets for one py_binary (see the module docstring).

    Args:
        name: the run target, by convention "image".
        binary: the py_binary label.
        image_name: last part of the repository, `slipway/<image_name>`.
        env: extra environment of the image.
        exposed_ports: e.g. ["8080/tcp"].
        kind: "job" (`:image` runs it in the foreground) or "service"
            (`:image` starts it detached and prints its URL).
        visibility: of the targets; default: the tests only.
    """
    if visibility == None:
        visibility = ["//tests:__subpackages__"]
    for select in ["packages", "app"]:
        runfiles_layer(name = "layer_" + select, binary = binary, select = select, visibility = visibility)
    oci_image(
        name = "oci_image",
        base = "//tools/image/base",
        tars = [
            "//tools/image:layer_torch",
            ":layer_packages",
            ":layer_app",
        ],
        entrypoint = ["/usr/bin/python3.11", LAUNCHER],
        env = dict({"PYTHONUNBUFFERED": "1"}, **env),
        exposed_ports = exposed_ports,
        labels = {"org.opencontainers.image.title": "slipway/" + image_name},
        visibility = visibility,
    )
    expand_template(
        name = "tags",
        out = "tags.txt",
        template = [UNSTAMPED_TAG],
        stamp_substitutions = {UNSTAMPED_TAG: "{{STABLE_VERSION}}"},
        visibility = visibility,
    )
    image_repository(name = "repository", image_name = image_name, visibility = visibility)
    oci_push(
        name = "push",
        image = ":oci_image",
        repository_file = ":repository",
        remote_tags = ":tags",
        visibility = visibility,
    )
    local_tag = "slipway/%s:latest" % image_name
    oci_load(
        name = "load",
        image = ":oci_image",
        repo_tags = [local_tag],
        visibility = visibility,
    )
    py_binary(
        name = name,
        srcs = [Label("//tools/image:run_image.py")],
        main = Label("//tools/image:run_image.py"),
        args = ["--load", "$(rootpath :load)", "--tag", local_tag, "--kind", kind, "--"],
        data = [":load"],
        visibility = visibility,
    )
