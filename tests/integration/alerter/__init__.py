"""The alerter on the real stack, with local receivers for Slack, DingTalk and webhooks."""
