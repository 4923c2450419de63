from sandbox.tests.integration.sandbox_fixture import *  # noqa: F403
