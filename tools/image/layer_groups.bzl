"""The layer groups of //tools/image: the one list of them, in layer order.

    LAYER_GROUPS = {group name: the pip repositories its layer holds}

Patterns as `layer_group` takes them: rules_python's pip hub names
(`pypi_<distribution>`), a trailing `*` matching any suffix. tools/image/BUILD.bazel
makes `//tools/image:layer_<name>` of each; py_image checks every image against
all of them (an image whose binary reaches a group must list it). A group holds
only repositories that no image reaches without the others: torch with the
packages only torch brings; numpy, pandas, pyarrow and scipy each alone;
scikit-learn, the MLflow client and matplotlib with what only they bring.
"""

LAYER_GROUPS = {
    # ~160 MB compressed; the four jobs after processing, and the service.
    "torch": [
        "pypi_torch",
        "pypi_sympy",
        "pypi_mpmath",
        "pypi_networkx",
    ],
    # The data packages: numpy in every image, the others in every job.
    "numpy": ["pypi_numpy"],
    "pandas": ["pypi_pandas"],
    "pyarrow": ["pypi_pyarrow"],
    "scipy": ["pypi_scipy"],
    # The processing job and the four jobs after it.
    "scikit_learn": [
        "pypi_scikit_learn",
        "pypi_joblib",
        "pypi_narwhals",
        "pypi_threadpoolctl",
    ],
    # The MLflow client with its SQL store (SQLAlchemy, Alembic) and what they
    # bring that the processing image does not reach: every image but
    # processing's. See //tools/image:mlflow_skinny_group_src.
    "mlflow_skinny": [
        "pypi_mlflow_skinny",
        "pypi_alembic",
        "pypi_annotated_doc",
        "pypi_annotated_types",
        "pypi_anyio",
        "pypi_cachetools",
        "pypi_certifi",
        "pypi_cffi",
        "pypi_charset_normalizer",
        "pypi_click",
        "pypi_cryptography",
        "pypi_databricks_sdk",
        "pypi_fastapi",
        "pypi_filelock",
        "pypi_fsspec",
        "pypi_gitdb",
        "pypi_gitpython",
        "pypi_google_auth",
        "pypi_h11",
        "pypi_idna",
        "pypi_importlib_metadata",
        "pypi_jinja2",
        "pypi_mako",
        "pypi_markupsafe",
        "pypi_opentelemetry_*",
        "pypi_packaging",
        "pypi_protobuf",
        "pypi_pyasn1",
        "pypi_pyasn1_modules",
        "pypi_pycparser",
        "pypi_pydantic",
        "pypi_pydantic_core",
        "pypi_python_dotenv",
        "pypi_pyyaml",
        "pypi_requests",
        "pypi_setuptools",
        "pypi_smmap",
        "pypi_sqlalchemy",
        "pypi_sqlparse",
        "pypi_starlette",
        "pypi_typing_extensions",
        "pypi_typing_inspection",
        "pypi_urllib3",
        "pypi_uvicorn",
        "pypi_zipp",
    ],
    # The evaluation and pipelines images.
    "matplotlib": [
        "pypi_matplotlib",
        "pypi_contourpy",
        "pypi_cycler",
        "pypi_fonttools",
        "pypi_kiwisolver",
        "pypi_pillow",
        "pypi_pyparsing",
    ],
}
