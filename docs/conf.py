"""Sphinx configuration for xdownscale (built with -W in the test suite: no warnings allowed)."""

import sphinx_autosummary_accessors

import xdownscale

project = "xdownscale"
author = "xdownscale developers"
copyright = "2026, xdownscale developers"
version = release = xdownscale.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx_autosummary_accessors",
    "myst_nb",
]
# notebooks are executed by the test suite (tests/test_notebooks.py) and stored with their
# outputs; the docs render those outputs without running anything
nb_execution_mode = "off"
templates_path = ["_templates", sphinx_autosummary_accessors.templates_path]
exclude_patterns = ["_build", "generated/*.inc", "**/.ipynb_checkpoints"]
autosummary_generate = True
autodoc_typehints = "none"
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = False
nitpicky = False
intersphinx_mapping = {}  # no network at build time
html_theme = "alabaster"
html_static_path = ["_static"]
suppress_warnings = ["autosummary.import_cycle"]
