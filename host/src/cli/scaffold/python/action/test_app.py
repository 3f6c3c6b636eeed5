"""Unit tests of {{NAME}} against the SDK's mock host (./test)."""

import unittest

from flowhost_testing import ActionError_InvalidConfig, MockHost, context, error_of
from app import ActionPlugin


class GreetingTest(unittest.TestCase):
    def test_greets_the_customer_by_name_and_remembers_it(self):
        host = MockHost()
        outcome = host.run_action(ActionPlugin, context("hi", name="Ada"), {"greeting": "Hello"})
        self.assertEqual(outcome.store.value, '"Hello, Ada!"')
        self.assertEqual(host.sent_texts(), ["Hello, Ada!"])
        self.assertEqual(host.data["greeted"], True)

    def test_a_configuration_without_a_greeting_is_refused(self):
        host = MockHost()
        error = error_of(lambda: host.run_action(ActionPlugin, context("hi"), {}))
        self.assertIsInstance(error, ActionError_InvalidConfig)
        self.assertEqual(host.sent, [])


if __name__ == "__main__":
    unittest.main()
