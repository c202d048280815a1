"""`beliefstream worker`: the Faust app, ingest engines, planner loop and the writer's client."""
