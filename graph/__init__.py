"""The social graph over Bolt/Cypher: the system of record.

Accounts, credentials, apps, tokens, follows, posts, media records, comments
and likes live here. Only Bolt and Neo4j 5 Cypher are spoken, through the
official ``neo4j`` driver, so the same statements run against Neo4j in
production and against the embedded ArcadeDB server locally.
"""
