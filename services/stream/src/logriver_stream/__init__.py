"""The stream service: live tail over SSE and WebSocket with exact resume."""
