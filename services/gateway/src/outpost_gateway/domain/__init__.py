"""The gateway's pure core: credential cache, authentication, route policy, query parsing.

Nothing here does I/O, reads a clock or makes an id: time and state are passed in.
"""
