"""The images this repository ships: the one list of them.

    IMAGES = {image name: the package whose py_image makes it}

The image of `name` is `slipway/<name>`; its package holds :oci_image, :push,
:tags (see image.bzl). BUILD files load IMAGES; Python code reads
//tools/image:images.json (`images_json`) from its runfiles, and a script
builds it and reads it from bazel-bin. A new image: a py_image in its
package, and one line here.
"""

IMAGES = {
    "processing": "//jobs/processing",
    "training": "//jobs/training",
    "evaluation": "//jobs/evaluation",
    "inference": "//jobs/inference",
    "pipelines": "//jobs/pipelines",
    "service": "//service",
}

# The images of the pipeline's steps, in run order (slipway.pipelines.STEP_NAMES):
# //jobs/pipelines:kfp pins them, //tests/tools/image:test_kfp_local pushes them.
PIPELINE_STEPS = ["processing", "training", "evaluation", "inference"]

def _images_json_impl(ctx):
    images = [
        {
            "name": name,
            "package": package.removeprefix("//"),
            "oci_image": package + ":oci_image",
            "push": package + ":push",
            "tags": package + ":tags",
        }
        for name, package in IMAGES.items()
    ]
    ctx.actions.write(ctx.outputs.out, json.encode_indent(images, indent = "  ") + "\n")
    return [DefaultInfo(files = depset([ctx.outputs.out]))]

images_json = rule(
    implementation = _images_json_impl,
    doc = "Writes IMAGES as a JSON list, in its order: per image its name, package " +
          "(a workspace path, e.g. `jobs/training`) and the labels of its oci_image, push and tags.",
    attrs = {"out": attr.output(mandatory = True, doc = "The JSON file, e.g. images.json.")},
)
