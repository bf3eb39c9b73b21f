"""The alerter: error-rate rules, a firing/resolved lifecycle, Slack/DingTalk/webhook delivery."""
