"""The subset of rules_oci 2.x's public API that Slipway uses, with its names.

Macros: oci_image, oci_push, oci_load (lists and dicts written to files, as
rules_oci's macros do); rules: oci_image_rule, oci_push_rule, oci_load_rule.
"""

load("@bazel_skylib//rules:write_file.bzl", "write_file")
load("//oci/private:image.bzl", _oci_image_rule = "oci_image")
load("//oci/private:load.bzl", _oci_load_rule = "oci_load")
load("//oci/private:push.bzl", _oci_push_rule = "oci_push")

oci_image_rule = _oci_image_rule
oci_push_rule = _oci_push_rule
oci_load_rule = _oci_load_rule

def _lines_file(name, suffix, value, **kwargs):
    """A list or dict as a file (one item or KEY=VALUE per line); a label as is."""
    if value == None:
        return None
    if type(value) == "list":
        lines = value
    elif type(value) == "dict":
        lines = ["%s=%s" % (k, v) for k, v in value.items()]
    else:
        return value
    target = "_%s_%s" % (name, suffix)
    write_file(
        name = target,
        out = target + ".txt",
        content = lines + [""],
        tags = kwargs.get("tags"),
        visibility = ["//visibility:private"],
    )
    return target

def oci_image(name, labels = None, annotations = None, env = None, cmd = None, entrypoint = None, exposed_ports = None, volumes = None, **kwargs):
    """Builds an OCI image layout directory `name` (rules_oci 2.x `oci_image`).

    Args:
        name: target name; the output is the directory `<name>`.
        labels: dict or file of KEY=VALUE lines (config Labels).
        annotations: dict or file of KEY=VALUE lines (manifest annotations).
        env: dict or file; `$VAR` and `${VAR}` expand from the base image's env.
        cmd: list or file, one argument per line.
        entrypoint: list or file, one argument per line.
        exposed_ports: list or file of ports such as `8080/tcp`.
        volumes: list or file of paths.
        **kwargs: base, tars, user, workdir, os, architecture, variant, created,
            visibility, tags, ...
    """
    _oci_image_rule(
        name = name,
        labels = _lines_file(name, "labels", labels, **kwargs),
        annotations = _lines_file(name, "annotations", annotations, **kwargs),
        env = _lines_file(name, "env", env, **kwargs),
        cmd = _lines_file(name, "cmd", cmd, **kwargs),
        entrypoint = _lines_file(name, "entrypoint", entrypoint, **kwargs),
        exposed_ports = _lines_file(name, "exposed_ports", exposed_ports, **kwargs),
        volumes = _lines_file(name, "volumes", volumes, **kwargs),
        **kwargs
    )

def oci_push(name, remote_tags = None, **kwargs):
    """`bazel run` target that pushes an image by digest, then applies tags.

    Args:
        name: target name.
        remote_tags: list of tags, or a file with one tag per line.
        **kwargs: image, repository or repository_file, visibility, tags, ...
    """
    _oci_push_rule(
        name = name,
        remote_tags = _lines_file(name, "remote_tags", remote_tags, **kwargs),
        **kwargs
    )

def oci_load(name, repo_tags = None, **kwargs):
    """`bazel run` target that loads an image into Docker or podman.

    Args:
        name: target name.
        repo_tags: list of `repository:tag`, or a file with one per line.
        **kwargs: image, format, loader, visibility, tags, ...
    """
    _oci_load_rule(
        name = name,
        repo_tags = _lines_file(name, "repo_tags", repo_tags, **kwargs),
        **kwargs
    )
