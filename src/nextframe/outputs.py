"""The names of what generate writes and evaluate reads, in one place."""

HELD_OUT_SPLIT = "test"  # the clips generated and scored (never val: it chose the epoch)
PROMPT_SPLIT = "prompt"  # free captions (generate.prompts): generated, not scored

CLIPS_INDEX = "clips.json"  # clip_id, caption, split, decoded, video of every generated clip
PREDICTIONS_TABLE = "predictions.parquet"
DECODED_TABLE = "decoded.parquet"
STRIPS_DIR = "frames"  # lossless decoded frames, one PNG strip per video: what evaluate scores
VIDEOS_DIR = "videos"
SHEETS_DIR = "contact_sheets"
