"""The reactive core: Ray actors that own timelines and move posts to them.

``InboxShard`` actors own home timelines (users map to shards by a stable
hash), ``CelebrityOutbox`` actors own celebrity authors' recent posts, and
``FanoutWorker`` actors consume the event stream and deliver posts in
batches: one actor call per shard per page of followers, never per follower.
"""
