"""One upload on one host.

    source -> producer -> bounded queue -> workers (UploadPart, retries) -> coordinator
                                                       Create ... Complete | Abort

sources (what can be uploaded), producer (reads parts into the queue), worker (sends them),
budget and pace (buffers, bytes per second), job (one upload's state), events, coordinator
(PutObject or multipart), single (PutObject), multipart (Create, the pipeline, Complete,
Abort), outcome (results and lost answers), failures (the caller's one exception), journal
and resume, sweeper (unfinished uploads), many (upload_many), uploader and api (the public
entry points).
"""
