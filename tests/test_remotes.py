"""Team sharing through real remotes: an SSH server and an S3-compatible server on 127.0.0.1.

The pipeline is reproduced once (on params that make it fast) in an "author" repository;
every test then shares it the way a team does: `dvc push` to the remote, `git clone` +
`dvc pull` on a colleague's side, byte-identical outputs and a clean `dvc status -c`;
experiments through `dvc exp push`/`pull`/`apply`; and the run cache, which lets a
colleague's `dvc repro` restore outputs instead of recomputing them. Credentials go where
DVC keeps them out of git (`dvc remote modify --local`, environment variables), and the
tests check that the committed `.dvc/config` holds none. Each server is started by the
tests and stopped after them; a test whose server cannot start here is skipped with the
reason. Times and sizes are printed (`pytest -rP` shows them).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from servers import S3Server, SSHServer, s3_server, serve, sshd
from test_pipeline_e2e import STAGES, command, copy_repo, run

pytestmark = pytest.mark.e2e

# Overrides that take the pipeline from several minutes to about one: fewer and shorter
# clips, a few epochs, the retrieval decoder only (the diffusion decoder is the slow part).
FAST_PARAMS = {
    "download.synthetic.n_clips": 16,
    "download.synthetic.n_frames": 12,
    "train.epochs": 3,
    "generate.decoders": ["retrieval"],
    "generate.decode_clips": 1,
    "evaluate.bootstrap": 100,
    "evaluate.contact_sheets": 1,
}
# The variant a colleague runs: only generate and evaluate see it.
VARIANT = {"generate.start": "first_frame"}
OUTPUTS = ("data/raw", "data/frames", "data/embeddings", "data/generated", "models", "metrics")
BUCKET_PATH = "nextframe"


def set_params(repo: Path, overrides: dict[str, object]) -> None:
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for dotted, value in overrides.items():
        *parents, key = dotted.split(".")
        section = params
        for name in parents:
            section = section[name]
        section[key] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def output_files(repo: Path) -> dict[str, bytes]:
    """Every file of the pipeline's outputs, by path relative to the repository."""
    files = {}
    for folder in OUTPUTS:
        for path in sorted((repo / folder).rglob("*")):
            if path.is_file() and path.name != ".gitignore":
                files[str(path.relative_to(repo))] = path.read_bytes()
    return files


def assert_same_outputs(original: Path, copy: Path) -> None:
    expected, found = output_files(original), output_files(copy)
    assert any(name.startswith("data/generated/") for name in expected)
    assert sorted(found) == sorted(expected)
    different = [name for name in expected if found[name] != expected[name]]
    assert not different, f"outputs differ from the original: {different[:10]}"


def timed(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, str]:
    started = time.perf_counter()
    output = run(args, cwd, timeout=900, env=env)
    return time.perf_counter() - started, output


def fails(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run a command that must fail; its output."""
    result = command(args, cwd, timeout=600, env=env)
    assert result.returncode != 0, f"{' '.join(args)} should have failed:\n{result.stdout}"
    return result.stdout + result.stderr


def assert_no_secrets_committed(repo: Path, secrets: list[str]) -> None:
    committed = run(["git", "show", "HEAD:.dvc/config"], repo)
    for secret in secrets:
        assert secret not in committed
    assert ".dvc/config.local" not in run(["git", "ls-files", ".dvc"], repo)


def report(kind: str, **measures: float) -> None:
    shown = ", ".join(f"{key}={value:.1f}" for key, value in measures.items())
    print(f"[remote {kind}] {shown}")


# What `dvc repro` says it did with a stage (DVC 3's messages).
OUTCOMES = {
    "ran": re.compile(r"Running stage '(\w+)'"),
    "restored from the run cache": re.compile(r"Stage '(\w+)' is cached - skipping run"),
    "pulled": re.compile(r"Pulling data for stage: '(\w+)'"),
    "unchanged": re.compile(r"Stage '(\w+)' didn't change, skipping"),
}


def stage_outcomes(output: str) -> dict[str, str]:
    """Stage name -> what `dvc repro` did with it, from its output."""
    outcomes: dict[str, str] = {}
    for outcome, pattern in OUTCOMES.items():
        for stage in pattern.findall(output):
            outcomes.setdefault(stage, outcome)
    return outcomes


def run_cacheable_stages(repo: Path) -> set[str]:
    """The stages DVC can restore from its run cache: no `persist` output and no
    `cache: false` output, metrics included (DVC records such a stage's run, but restoring
    it needs every output in the cache)."""
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    cacheable = set()
    for name, stage in stages.items():
        declared = stage.get("outs", []) + stage.get("metrics", []) + stage.get("plots", [])
        outs = [out if isinstance(out, dict) else {out: {}} for out in declared]
        options = [opts or {} for out in outs for opts in out.values()]
        if not any(opt.get("persist") or opt.get("cache") is False for opt in options):
            cacheable.add(name)
    return cacheable


@pytest.fixture(scope="module")
def author(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pipeline reproduced on FAST_PARAMS and committed: what a colleague shares."""
    repo = copy_repo(tmp_path_factory.mktemp("author"))
    set_params(repo, FAST_PARAMS)
    output = run(["dvc", "repro"], repo, timeout=1500)
    for stage in STAGES:
        assert f"Running stage '{stage}'" in output
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "reproduced on fast params"], repo)
    return repo


# --- SSH ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ssh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    yield from serve(sshd, tmp_path_factory.mktemp("sshd"))


def test_ssh_push_clone_pull_gives_identical_outputs(
    ssh: SSHServer, author: Path, tmp_path: Path
) -> None:
    # (the server fixture first: a test that skips runs no pipeline)
    store = tmp_path / "store"  # a folder on the server (which is this machine)
    run(["dvc", "remote", "add", "ssh-team", ssh.url(store)], author)
    run(["dvc", "remote", "modify", "--local", "ssh-team", "keyfile", str(ssh.keyfile)], author)
    run(["git", "commit", "-q", "-m", "ssh remote", ".dvc/config"], author)
    assert_no_secrets_committed(author, [str(ssh.keyfile), "keyfile"])
    push_s, _ = timed(["dvc", "push", "-r", "ssh-team"], author)
    stored = [p for p in store.rglob("*") if p.is_file()]

    clone = tmp_path / "clone"
    clone_s, _ = timed(["git", "clone", "-q", str(author), str(clone)], tmp_path)
    # the committed config names the server but holds no key: without one, no pull
    fails(["dvc", "pull", "-r", "ssh-team"], clone)
    assert not (clone / "data" / "generated").exists()
    run(["dvc", "remote", "modify", "--local", "ssh-team", "keyfile", str(ssh.keyfile)], clone)
    pull_s, _ = timed(["dvc", "pull", "-r", "ssh-team"], clone)
    assert_same_outputs(author, clone)
    status = run(["dvc", "status", "-c", "-r", "ssh-team"], clone)
    assert "in sync" in status.lower(), status
    report(
        "ssh",
        push_s=push_s,
        clone_s=clone_s,
        pull_s=pull_s,
        files=len(stored),
        mib=sum(p.stat().st_size for p in stored) / 2**20,
    )


# --- S3 ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    yield from serve(s3_server, tmp_path_factory.mktemp("s3"))


@dataclass(frozen=True)
class Published:
    origin: Path  # a bare git repository, the team's "origin"
    s3: S3Server

    def credentials(self) -> dict[str, str]:
        """The key as environment variables, the other way DVC (botocore) finds it."""
        return {
            "AWS_ACCESS_KEY_ID": self.s3.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.s3.secret_access_key,
        }

    def clone(self, destination: Path) -> Path:
        run(["git", "clone", "-q", str(self.origin), str(destination)], destination.parent)
        return destination


@pytest.fixture(scope="module")
def published(s3: S3Server, author: Path, tmp_path_factory: pytest.TempPathFactory) -> Published:
    """The author's repository with the S3 server as its default remote (URL and endpoint
    committed, the key only in .dvc/config.local), pushed with its run cache, and cloned
    bare as the team's git origin. (The server first: tests that skip run no pipeline.)"""
    url = f"s3://{s3.bucket}/{BUCKET_PATH}"
    run(["dvc", "remote", "add", "-d", "s3-team", url], author)
    run(["dvc", "remote", "modify", "s3-team", "endpointurl", s3.endpoint], author)
    for option, value in (
        ("access_key_id", s3.access_key_id),
        ("secret_access_key", s3.secret_access_key),
    ):
        run(["dvc", "remote", "modify", "--local", "s3-team", option, value], author)
    run(["git", "commit", "-q", "-m", "s3 remote", ".dvc/config"], author)
    assert_no_secrets_committed(author, [s3.access_key_id, s3.secret_access_key])
    push_s, _ = timed(["dvc", "push"], author)
    objects, size = s3.stored_bytes(f"{BUCKET_PATH}/")
    run_cache_s, _ = timed(["dvc", "push", "--run-cache"], author)
    runs, runs_size = s3.stored_bytes(f"{BUCKET_PATH}/runs/")
    report(
        "s3",
        push_s=push_s,
        objects=objects,
        mib=size / 2**20,
        push_run_cache_s=run_cache_s,
        run_cache_entries=runs,
        run_cache_kib=runs_size / 2**10,
    )
    origin = tmp_path_factory.mktemp("git") / "origin.git"
    run(["git", "clone", "-q", "--bare", str(author), str(origin)], origin.parent)
    return Published(origin=origin, s3=s3)


def test_s3_push_clone_pull_gives_identical_outputs(
    author: Path, published: Published, tmp_path: Path
) -> None:
    clone_s, _ = timed(["git", "clone", "-q", str(published.origin), "clone"], tmp_path)
    clone = tmp_path / "clone"
    wrong = {**published.credentials(), "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    fails(["dvc", "pull"], clone, env=wrong)
    assert not (clone / "data" / "generated").exists()
    pull_s, _ = timed(["dvc", "pull"], clone, env=published.credentials())
    assert_same_outputs(author, clone)
    status = run(["dvc", "status", "-c"], clone, env=published.credentials())
    assert "in sync" in status.lower(), status
    report("s3", clone_s=clone_s, pull_s=pull_s)


def test_fresh_clone_repro_pull_restores_every_stage_without_running_it(
    author: Path, published: Published, tmp_path: Path
) -> None:
    """`dvc repro --pull` in a fresh clone (no outputs at all): every stage's outputs come
    from the remote (pulled for the committed dvc.lock, or restored from the run cache it
    also pulls), none is recomputed."""
    clone = published.clone(tmp_path / "fresh")
    started = time.perf_counter()
    output = run(["dvc", "repro", "--pull"], clone, env=published.credentials())
    seconds = time.perf_counter() - started
    outcomes = stage_outcomes(output)
    print(f"[remote s3] fresh clone, dvc repro --pull: {outcomes}")
    assert sorted(outcomes) == sorted(STAGES), output
    assert "ran" not in outcomes.values(), output
    assert_same_outputs(author, clone)
    assert "up to date" in run(["dvc", "status"], clone).lower()
    report("s3", repro_pull_s=seconds)


@pytest.fixture(scope="module")
def experiment(published: Published, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A colleague's clone (credentials from the environment) that ran the VARIANT as an
    experiment and pushed it, its data and its run cache."""
    clone = published.clone(tmp_path_factory.mktemp("colleague") / "repo")
    env = published.credentials()
    run(["dvc", "pull"], clone, env=env)
    overrides = [arg for key, value in VARIANT.items() for arg in ("-S", f"{key}={value}")]
    output = run(["dvc", "exp", "run", "-n", "first-frame", *overrides], clone, timeout=1500)
    assert "Running stage 'generate'" in output and "Running stage 'train'" not in output
    started = time.perf_counter()
    run(["dvc", "exp", "push", "--run-cache", "origin", "first-frame"], clone, env=env)
    report("s3", exp_push_s=time.perf_counter() - started)
    return clone


def test_exp_push_pull_apply_brings_params_metrics_and_outputs(
    published: Published, experiment: Path, tmp_path: Path
) -> None:
    clone = published.clone(tmp_path / "other")
    # this clone keeps the key in .dvc/config.local, where `--local` puts it
    for option, value in (
        ("access_key_id", published.s3.access_key_id),
        ("secret_access_key", published.s3.secret_access_key),
    ):
        run(["dvc", "remote", "modify", "--local", "s3-team", option, value], clone)
    assert "first-frame" in run(["dvc", "exp", "list", "origin"], clone)
    started = time.perf_counter()
    run(["dvc", "exp", "pull", "origin", "first-frame"], clone)
    pull_s = time.perf_counter() - started
    run(["dvc", "exp", "apply", "first-frame"], clone)

    params = yaml.safe_load((clone / "params.yaml").read_text())
    assert params["generate"]["start"] == VARIANT["generate.start"]
    for name in ("metrics/evaluate.json", "metrics/train.json", "params.yaml"):
        assert (clone / name).read_bytes() == (experiment / name).read_bytes(), name
    assert_same_outputs(experiment, clone)
    report("s3", exp_pull_s=pull_s)


def test_a_variant_that_no_dvc_lock_records_reruns_to_the_same_bytes(
    published: Published, experiment: Path, tmp_path: Path
) -> None:
    """A third colleague sets the same VARIANT by hand in a fresh clone of the committed
    code: dvc.lock knows nothing of it. Every output is `persist` (bad params never cost
    outputs), so DVC run-caches no stage: `dvc repro --pull` reruns the changed stages and
    pulls the unchanged stages' outputs, and the result equals the experiment's bytes."""
    clone = published.clone(tmp_path / "third")
    set_params(clone, VARIANT)
    started = time.perf_counter()
    output = run(["dvc", "repro", "--pull"], clone, env=published.credentials(), timeout=1500)
    seconds = time.perf_counter() - started
    cacheable = run_cacheable_stages(clone)
    # as the README says: every output is persist, so no stage is run-cacheable
    assert cacheable == set()
    outcomes = stage_outcomes(output)
    print(f"[remote s3] variant set by hand, dvc repro --pull: {outcomes}")
    assert sorted(outcomes) == sorted(STAGES), output
    assert outcomes["generate"] == "ran", output
    for stage, outcome in outcomes.items():
        if outcome in ("pulled", "unchanged"):
            continue  # not touched by the variant: its outputs come from the remote
        # DVC never run-caches a stage with a persist or `cache: false` output
        expected = "restored from the run cache" if stage in cacheable else "ran"
        assert outcome == expected, f"{stage}:\n{output}"
    for folder in ("data/generated", "models"):
        for path in (experiment / folder).rglob("*"):
            if path.is_file():
                relative = path.relative_to(experiment)
                assert (clone / relative).read_bytes() == path.read_bytes(), relative
    report("s3", variant_repro_pull_s=seconds)
