from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    # In-process: the multiprocess executor re-imports the project for every step (seconds each),
    # which dominates a pipeline whose steps take a second or two.
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(executor=dg.in_process_executor),
    )
