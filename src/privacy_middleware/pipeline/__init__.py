"""The request pipeline: a route's plan (`plan`), the named step order (`order`), the typed facts
steps pass on (`facts`), one module per step, and the Set-Cookie filter (`cookies`).

Nothing is imported here, so `context` can use `pipeline.facts` without a cycle.
"""
