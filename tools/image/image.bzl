"""py_image: a py_binary as an OCI image with push, load and run targets.

    py_image(name = "image", binary = ":training", image_name = "training")

makes, in the calling package:
    :binary          an alias of `binary` (what the image runs)
    :layers          the binary's runfiles as layers: one per layer group its
                     runfiles reach (e.g. torch), then the other third-party
                     packages, then the application (.tar.gz files, in order)
    :oci_image       the image: base | groups... | packages | app
    :tags            the tag file: `dev` unstamped, STABLE_VERSION when stamped
    :repository      `<registry>/slipway/<image_name>`; registry from
                     --//tools/image:registry (default localhost:5000)
    :push            `bazel run :push [-- --repository R --tag T]`
    :load            `bazel run :load`: into Docker, else podman; nothing to do
                     when the engine's local tag already is this image
    :oci_load        rules_oci's oci_load: always streams the tarball
    :<name>          `bazel run :image [-- --norun | ARGS...]`: load, then run

An image carries only its binary's runfiles. Large dependencies get layers of
their own through layer groups (the idea of rules_py's `py_image_layer`
`layer_groups`): a `layer_group` target names pip repositories by pattern and
builds their layer once, so every image that holds them shares the same blob.
An image lists the groups its binary reaches (`layer_groups`, names from
layer_groups.bzl) and only those are in its build graph: the processing image
does not depend on torch, so building it fetches no torch. The build fails
when the list and what the binary reaches differ. A team adds its own group
with one `layer_group` target and passes its label in `layer_groups`.
"""

load("@aspect_bazel_lib//lib:expand_template.bzl", "expand_template")
load("@bazel_skylib//rules:common_settings.bzl", "BuildSettingInfo")
load("@rules_oci//oci:defs.bzl", "oci_image", "oci_load", "oci_push")
load("@rules_python//python:defs.bzl", "py_binary")
load(":layer_groups.bzl", "LAYER_GROUPS")

# Where the launcher sits in every image; its runfiles are `<root>.runfiles/`.
LAUNCHER = "/app/main"
UNSTAMPED_TAG = "dev"

# Every group of layer_groups.bzl, in layer order: the image tests read them
# (//tools/image:layer_groups), and a py_image without a list of its own gets them.
DEFAULT_LAYER_GROUPS = [Label("//tools/image:layer_" + name) for name in LAYER_GROUPS]

# Third-party files no image runs: the packages' own test suites (pandas, scipy,
# pyarrow, numpy, ... ship theirs; ~11 MB compressed in the processing image),
# torch's C++ tests, test programs, protoc and C++ headers (~49 MB compressed),
# and what only compiling extensions against a package uses: pyarrow's C++
# headers and sources and every package's Cython sources (~1.7 MB in the
# processing image). An image that builds extensions at run time (torch's C++
# extensions, torch.compile's C++ backend) passes its own `exclude`. Globs over
# a file's path inside its pip repository.
# The build's bytecode (tools/python/bytecode.annotation.json) goes in: a
# non-root container cannot write it, so without it every start compiles
# torch, MLflow, ... again (tools/image/BUILD.bazel's numpy and scipy groups
# leave it out, for the processing image's size).
DEFAULT_EXCLUDES = [
    "*/tests/*",
    "*/torch/test/*",
    "*/torch/bin/test_*",
    "*/torch/bin/*Test",
    "*/torch/bin/protoc*",
    "*/torch/include/*",
    "*/pyarrow/include/*",
    "*/pyarrow/src/*",
    "*.pyx",
    "*.pxd",
    "*.pxi",
]

LayerGroupInfo = provider(
    doc = "A shared layer of the pip repositories whose names match `patterns`.",
    fields = {
        "name": "the group's name, e.g. torch",
        "patterns": "repository name patterns: `pypi_torch`, or `pypi_nvidia_*` (prefix)",
        "repos": "names of the repositories the layer holds",
        "layer": "the .tar.gz File",
    },
)

def _runfiles_path(path):
    # Runfiles paths: `_main/<path>` for this repository, `<repo>/<path>` for others.
    return path[3:] if path.startswith("../") else "_main/" + path

def _file_line(f):
    return "%s\t%s" % (_runfiles_path(f.short_path), f.path)

def _empty_line(path):
    return "%s\t" % _runfiles_path(path)

def _apparent(repo):
    # `rules_python~0.22.1~pip~pypi_torch` (Bazel 7) or `...+pypi_torch` (Bazel 8) -> pypi_torch
    return repo.replace("+", "~").split("~")[-1]

def _label(label):
    return "//%s:%s" % (label.package, label.name)

def _matches(repo, patterns):
    name = _apparent(repo)
    for pattern in patterns:
        if name == pattern or (pattern.endswith("*") and name.startswith(pattern[:-1])):
            return True
    return False

def _runfiles_repos(runfiles):
    """The external repositories that `runfiles` hold files of (one pass: ~20,000 files with torch)."""
    found = {}
    for f in runfiles.files.to_list():
        repo = f.owner.workspace_name if f.owner else ""
        if repo:
            found[repo] = True
    return found.keys()

def _repos(repos, patterns):
    """The names of `repos` that match `patterns`, sorted."""
    return sorted([repo for repo in repos if _matches(repo, patterns)])

def _write_layer(ctx, target, out, select, patterns, exclude):
    """One action: the `select` class of `target`'s runfiles as the layer `out`."""
    info = target[DefaultInfo]
    runfiles = info.default_runfiles
    lines = ctx.actions.args()
    lines.set_param_file_format("multiline")
    lines.add_all(runfiles.files, map_each = _file_line)
    lines.add_all(runfiles.empty_filenames, map_each = _empty_line)
    executable = info.files_to_run.executable
    extra = []
    if executable:
        lines.add("<launcher>\t" + executable.path)
        extra.append(executable)
        mapping = info.files_to_run.repo_mapping_manifest
        if mapping:
            lines.add("_repo_mapping\t" + mapping.path)
            extra.append(mapping)
    manifest = ctx.actions.declare_file(out.basename + ".manifest", sibling = out)
    ctx.actions.write(manifest, lines)
    args = ["runfiles", "--out", out.path, "--root", LAUNCHER, "--select", select]
    for pattern in patterns:
        args += ["--pattern", pattern]
    for glob in exclude:
        args += ["--exclude", glob]
    ctx.actions.run(
        executable = ctx.executable._layer,
        arguments = args + [manifest.path],
        inputs = depset([manifest] + extra, transitive = [runfiles.files]),
        outputs = [out],
        mnemonic = "ImageLayer",
        progress_message = "Writing %s layer of %s" % (select, target.label),
    )

def _layer_group_impl(ctx):
    out = ctx.actions.declare_file(ctx.label.name + ".tar.gz")
    repos = _repos(_runfiles_repos(ctx.attr.src[DefaultInfo].default_runfiles), ctx.attr.patterns)
    if not repos:
        fail("%s: no repository in the runfiles of %s matches %s" % (ctx.label, ctx.attr.src.label, ctx.attr.patterns))
    _write_layer(ctx, ctx.attr.src, out, "group", ctx.attr.patterns, ctx.attr.exclude)
    return [
        DefaultInfo(files = depset([out])),
        LayerGroupInfo(name = ctx.attr.group, patterns = ctx.attr.patterns, repos = sorted(repos), layer = out),
    ]

layer_group = rule(
    implementation = _layer_group_impl,
    doc = """A layer of its own for large pip packages, shared by every image that holds them.

    layer_group(
        name = "layer_torch",
        group = "torch",
        patterns = ["pypi_torch"],
        src = requirement("torch"),
    )

The layer holds the files of the repositories of `src`'s runfiles whose names
match `patterns`; py_image leaves those repositories out of its packages layer
and puts this layer in instead, whenever its binary reaches one of them.
""",
    attrs = {
        "group": attr.string(mandatory = True, doc = "The group's name, shown in messages."),
        "patterns": attr.string_list(
            mandatory = True,
            doc = "Repository names as rules_python's pip hub names them (`pypi_<distribution>`); a trailing `*` matches any suffix.",
        ),
        "src": attr.label(mandatory = True, doc = "A target whose runfiles hold every repository of the group (a py_library that depends on them all)."),
        "exclude": attr.string_list(default = DEFAULT_EXCLUDES, doc = "Globs of paths inside the repositories to leave out."),
        "_layer": attr.label(default = "//tools/image:layer", executable = True, cfg = "exec"),
    },
)

def _layer_groups_json_impl(ctx):
    groups = [target[LayerGroupInfo] for target in ctx.attr.groups]
    entries = [
        {
            "name": group.name,
            "patterns": group.patterns,
            "repos": [_apparent(repo) for repo in group.repos],
            "layer": group.layer.short_path,
        }
        for group in groups
    ]
    ctx.actions.write(ctx.outputs.out, json.encode_indent(entries, indent = "  ") + "\n")
    layers = [group.layer for group in groups]
    return [DefaultInfo(
        files = depset([ctx.outputs.out]),
        runfiles = ctx.runfiles(files = [ctx.outputs.out] + layers),
    )]

layer_groups_json = rule(
    implementation = _layer_groups_json_impl,
    doc = "Writes layer groups as a JSON list, in layer order: per group its name, patterns, " +
          "repositories (apparent names, e.g. `pypi_torch`) and layer (a workspace path). " +
          "Its runfiles hold the JSON file and the layers.",
    attrs = {
        "groups": attr.label_list(mandatory = True, providers = [LayerGroupInfo]),
        "out": attr.output(mandatory = True, doc = "The JSON file, e.g. layer_groups.json."),
    },
)

def _image_layers_impl(ctx):
    repos = _runfiles_repos(ctx.attr.binary[DefaultInfo].default_runfiles)
    layers = []
    grouped = []
    listed = {}
    for target in ctx.attr.layer_groups:
        group = target[LayerGroupInfo]
        listed[group.name] = True
        reached = _repos(repos, group.patterns)
        if not reached:
            if ctx.attr.exact:
                fail("%s does not reach layer group %s (%s): remove it from layer_groups of the py_image in //%s" % (
                    _label(ctx.attr.binary.label),
                    group.name,
                    ", ".join(group.patterns),
                    ctx.label.package,
                ))
            continue
        missing = [r for r in reached if r not in group.repos]
        if missing:
            fail("%s reaches %s, which layer group %s (%s) does not hold: make its src depend on them" % (
                _label(ctx.attr.binary.label),
                ", ".join(missing),
                group.name,
                target.label,
            ))
        layers.append(group.layer)
        grouped += group.patterns

    # A group the image does not list would go into its packages layer whole.
    for name, patterns in ctx.attr.known_groups.items():
        reached = [] if name in listed else _repos(repos, patterns)
        if reached:
            fail("%s reaches %s, of layer group %s: add \"%s\" to layer_groups of the py_image in //%s" % (
                _label(ctx.attr.binary.label),
                ", ".join([_apparent(r) for r in reached]),
                name,
                name,
                ctx.label.package,
            ))
    for select in ["packages", "app"]:
        out = ctx.actions.declare_file("%s_%s.tar.gz" % (ctx.label.name, select))
        _write_layer(ctx, ctx.attr.binary, out, select, grouped if select == "packages" else [], ctx.attr.exclude)
        layers.append(out)
    return [DefaultInfo(files = depset(layers, order = "preorder"))]

image_layers = rule(
    implementation = _image_layers_impl,
    doc = "A py_binary's runfiles as ordered layers: its layer groups, other packages, the app.",
    attrs = {
        "binary": attr.label(mandatory = True, executable = True, cfg = "target"),
        "layer_groups": attr.label_list(providers = [LayerGroupInfo], doc = "The groups whose layers the image holds, in layer order."),
        "exact": attr.bool(doc = "Fail when the binary does not reach a group of `layer_groups`."),
        "known_groups": attr.string_list_dict(doc = "Group name -> patterns of groups the binary must not reach unless listed."),
        "exclude": attr.string_list(default = DEFAULT_EXCLUDES, doc = "Globs of third-party paths (inside their repository) to leave out."),
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

def py_image(name, binary, image_name, env = {}, exposed_ports = [], kind = "job", layer_groups = None, visibility = None):
    """Image, push, load and run targets for one py_binary (see the module docstring).

    Args:
        name: the run target, by convention "image".
        binary: the py_binary label.
        image_name: last part of the repository, `slipway/<image_name>`.
        env: extra environment of the image.
        exposed_ports: e.g. ["8080/tcp"].
        kind: "job" (`:image` runs it in the foreground) or "service"
            (`:image` starts it detached and prints its URL).
        layer_groups: the layer groups the binary reaches: names from
            layer_groups.bzl (e.g. "torch"; layered in that file's order),
            or labels of a team's own layer_group targets (layered last).
            Only these are in the image's build graph. The build fails when
            the binary reaches a group of layer_groups.bzl that is not
            listed, or does not reach one that is listed. Default: every
            group of layer_groups.bzl (for a binary that reaches them all;
            those it does not reach are skipped, but stay in its graph).
        visibility: of the targets; default: the tests, and //jobs/pipelines
            (its KFP compiler pins the images' digests).
    """
    if visibility == None:
        visibility = ["//jobs/pipelines:__pkg__", "//tests:__subpackages__"]
    native.alias(name = "binary", actual = binary, visibility = visibility)
    image_layers(
        name = "layers",
        binary = binary,
        # Layers in layer_groups.bzl's order (so that images agree), a team's own last.
        layer_groups = DEFAULT_LAYER_GROUPS if layer_groups == None else [
            Label("//tools/image:layer_" + group)
            for group in LAYER_GROUPS
            if group in layer_groups
        ] + [group for group in layer_groups if group not in LAYER_GROUPS],
        exact = layer_groups != None,
        known_groups = LAYER_GROUPS,
        visibility = visibility,
    )
    oci_image(
        name = "oci_image",
        base = "//tools/image/base",
        tars = [":layers"],
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
        name = "oci_load",
        image = ":oci_image",
        repo_tags = [local_tag],
        visibility = visibility,
    )
    load_args = ["--oci-load", "$(rootpath :oci_load)", "--image", "$(rootpath :oci_image)", "--tag", local_tag]
    load_data = [":oci_load", ":oci_image"]

    # :load asks the engine first and streams the image only when it lacks it.
    py_binary(
        name = "load",
        srcs = [Label("//tools/image:load_image.py")],
        main = Label("//tools/image:load_image.py"),
        args = load_args,
        data = load_data,
        visibility = visibility,
    )
    py_binary(
        name = name,
        srcs = [Label("//tools/image:run_image.py"), Label("//tools/image:load_image.py")],
        main = Label("//tools/image:run_image.py"),
        args = load_args + ["--kind", kind, "--"],
        data = load_data,
        visibility = visibility,
    )
