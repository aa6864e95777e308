"""debian_packages: the .debs of a lock file, fetched through Bazel's downloader.

The repository cache keeps every package by its SHA256, so a build still works
after Debian's archive has dropped a pinned version (security updates replace
packages in the pool).
"""

def _debian_packages_impl(rctx):
    lock = json.decode(rctx.read(rctx.attr.lock))
    labels = []
    for package in lock["packages"]:
        out = "debs/%s_%s.deb" % (package["name"], package["version"].replace(":", "%3a"))
        rctx.download(url = package["url"], output = out, sha256 = package["sha256"])
        labels.append(out)
    rctx.file("BUILD.bazel", """\
# Generated from {lock}: the packages in lock order.
filegroup(
    name = "debs",
    srcs = {srcs},
    visibility = ["//visibility:public"],
)
""".format(lock = rctx.attr.lock, srcs = json.encode_indent(labels, indent = "    ")))

debian_packages = repository_rule(
    implementation = _debian_packages_impl,
    attrs = {
        "lock": attr.label(mandatory = True, allow_single_file = [".json"]),
    },
    doc = "Downloads every package of a debs.lock.json (see tools/image/base/lock.py).",
)
