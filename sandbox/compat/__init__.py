"""Compatibility suite: clients this project did not write, installed from the package registry as users have them
(sandbox/compat/requirements.txt, in their own virtualenv), drive a sandbox; see sandbox/README.md."""
