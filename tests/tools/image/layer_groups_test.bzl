"""Analysis tests of py_image's layer-group lists: a list that differs from what the binary reaches fails the build."""

load("@bazel_skylib//lib:unittest.bzl", "analysistest", "asserts")

def _fails_with_impl(ctx):
    env = analysistest.begin(ctx)
    asserts.expect_failure(env, ctx.attr.message)
    return analysistest.end(env)

fails_with_test = analysistest.make(
    _fails_with_impl,
    expect_failure = True,
    attrs = {"message": attr.string(mandatory = True, doc = "A part of the expected error.")},
)
