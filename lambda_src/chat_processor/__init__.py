"""The processor Lambda: validates analytics events from the events queue, merges them into the events table and
sends each stored request's state to the event lake. Lambda's handler is ``chat_processor.handler.handler``; this
package is the whole asset and imports nothing else from the repository."""
