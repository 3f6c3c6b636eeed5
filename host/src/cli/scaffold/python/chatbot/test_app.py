"""Unit tests of {{NAME}} against the SDK's mock host (./test)."""

import json
import unittest

from flowhost_testing import AdapterError_Protocol, AdapterError_Unavailable, MockHost, context, error_of, inbound
from app import ChatbotAdapter

BOT = "https://bot.example/talk"


class AdapterTest(unittest.TestCase):
    def test_the_customer_message_goes_to_the_bot_and_its_answer_comes_back(self):
        host = MockHost().answer("POST", BOT, 200, {"replies": ["Hi!", "How can I help?"]})
        turn = host.deliver(ChatbotAdapter, context("hello"), {"url": BOT})
        self.assertEqual([r.text for r in turn.replies], ["Hi!", "How can I help?"])
        self.assertIsNone(turn.handoff_queue)
        sent = json.loads(host.requests[0].body)
        self.assertEqual(sent["text"], "hello")
        self.assertIn("hash=test-hash", sent["reply_url"])

    def test_a_pressed_quick_reply_is_sent_as_its_payload(self):
        host = MockHost().answer("POST", BOT, 202)
        turn = host.deliver(ChatbotAdapter, context("Yes"), {"url": BOT}, inbound("Yes", quick_reply="YES"))
        self.assertEqual(turn.replies, [])
        self.assertEqual(json.loads(host.requests[0].body)["text"], "YES")

    def test_an_error_status_or_no_answer_sends_the_customer_to_the_fallback(self):
        host = MockHost().answer("POST", BOT, 500)
        error = error_of(lambda: host.deliver(ChatbotAdapter, context("hi"), {"url": BOT}))
        self.assertIsInstance(error, AdapterError_Unavailable)
        self.assertIn("HTTP 500", error.value)
        error = error_of(lambda: MockHost().deliver(ChatbotAdapter, context("hi"), {"url": BOT}))
        self.assertIsInstance(error, AdapterError_Unavailable)

    def test_a_later_answer_is_read_from_the_callback(self):
        callback = MockHost().parse_callback(ChatbotAdapter, {"url": BOT}, b'{"replies": ["Done"], "handoff": "sales"}')
        self.assertEqual(callback.turn.replies[0].text, "Done")
        self.assertEqual(callback.turn.handoff_queue, "sales")
        error = error_of(lambda: MockHost().parse_callback(ChatbotAdapter, {"url": BOT}, b"{"))
        self.assertIsInstance(error, AdapterError_Protocol)


if __name__ == "__main__":
    unittest.main()
