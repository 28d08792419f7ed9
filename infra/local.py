"""The whole pipeline on this machine, with real components: moto's S3 and SQS (server mode), the
backdrop emulator for the PicWish API, and the function running under `cargo lambda watch` — or,
with --package ZIP, the deployment package itself (dist/build's zip: its `bootstrap`) under AWS's
Lambda Runtime Interface Emulator, as Lambda runs it.

    infra/local.sh [PNG ...]      upload PNGs (default: tests/fixtures/bottle.png), run them
                                  through the function, copy the results to backdrop-out/lambda/
    infra/local.sh --check        the same with the committed event fixtures too, asserting every
                                  output, then a crash: `cargo lambda watch` killed mid-task and
                                  the event delivered again resumes the recorded task (tests/run
                                  uses this)
    infra/local.sh --check --package dist/backdrop-lambda-x86_64.zip
                                  the same checks against the package under the runtime interface
                                  emulator, then its cold start: init duration, first-invocation
                                  latency and the bootstrap's peak RSS (tests/run uses this too)

S3 sends its notification to an SQS queue in moto; the messages received from that queue are
handed to the function as a Lambda SQS event, POSTed to the invoke endpoint that `cargo lambda
watch` and the runtime interface emulator both serve. Everything listens on 127.0.0.1 and stops
when the script ends.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
import urllib.error
import urllib.parse
import urllib.request

import boto3

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVENTS = os.path.join(ROOT, "crates", "lambda", "tests", "events")
BUCKET = "backdrop-local"
BUDGET_TABLE = "backdrop-budget"
QUEUE = "backdrop-uploads"
BOTTLE = os.path.join(ROOT, "tests", "fixtures", "bottle.png")
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, what, seconds=120, process=None):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process is not None and process.poll() is not None:
            sys.exit(f"{what} exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"{what} did not listen on 127.0.0.1:{port} within {seconds} s")


class Services:
    """Starts the processes and stops them all at the end."""

    def __init__(self):
        self.processes = []

    def start(self, args, **kwargs):
        process = subprocess.Popen(args, **kwargs)
        self.processes.append(process)
        return process

    def stop(self):
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()


def start_emulator(services, processing_ms=1500):
    subprocess.check_call(["cargo", "build", "-q", "-p", "backdrop-emulator"], cwd=ROOT)
    binary = os.path.join(TARGET, "debug", "backdrop-emulator")
    process = services.start(
        [binary, "--bind", "127.0.0.1:0", "--processing-ms", str(processing_ms), "--queue-ms", "200",
         "--prepare-ms", "200"],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline().strip()
    if "listening on " not in line:
        sys.exit(f"the emulator did not start: {line!r}")
    return line.split("listening on ", 1)[1]


class Function:
    """How the function runs: `cargo lambda watch` over the sources (a debug or release build), or
    a deployment package's `bootstrap` under AWS's runtime interface emulator (`package`)."""

    def __init__(self, services, env, log, release=False, package=None):
        self.services, self.env, self.log = services, env, log
        self.release, self.package = release, package
        self.process, self.port, self.started = None, None, None
        self.bootstrap_dir = None
        if package:
            self.bootstrap_dir = tempfile.mkdtemp(prefix="backdrop-package-")
            with zipfile.ZipFile(package) as archive:
                archive.extractall(self.bootstrap_dir)
            bootstrap = os.path.join(self.bootstrap_dir, "bootstrap")
            if not os.path.isfile(bootstrap):
                sys.exit(f"{package} has no bootstrap at its root")
            # zipfile drops the mode: Lambda runs the file as the zip's mode says (0755).
            mode = (archive.getinfo("bootstrap").external_attr >> 16) & 0o777
            if not mode & 0o111:
                sys.exit(f"{package}: bootstrap is not executable in the zip (mode {oct(mode)})")
            os.chmod(bootstrap, mode)

    @property
    def name(self):
        return "an instance of the package under the runtime interface emulator" if self.package \
            else "cargo lambda watch"

    def start(self):
        """Starts a new instance (cold) and waits until it listens."""
        self.port = free_port()
        if self.package:
            rie = subprocess.check_output(["bash", os.path.join(ROOT, "infra", "rie.sh")], text=True).strip()
            env = dict(self.env, AWS_LAMBDA_FUNCTION_TIMEOUT="360", AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256",
                       AWS_LAMBDA_FUNCTION_NAME="backdrop-generate")
            command = [rie, "--runtime-interface-emulator-address", f"127.0.0.1:{self.port}",
                       "--runtime-api-address", f"127.0.0.1:{free_port()}", "./bootstrap"]
            self.process = self.services.start(command, cwd=self.bootstrap_dir, env=env,
                                               stdout=self.log, stderr=subprocess.STDOUT)
        else:
            command = ["cargo", "lambda", "watch", "-A", "127.0.0.1", "-P", str(self.port),
                       "-p", "backdrop-lambda", "--ignore-changes", "--timeout", "360"]
            if self.release:
                command.append("--release")
            self.process = self.services.start(command, cwd=ROOT, env=self.env, stdout=self.log,
                                               stderr=subprocess.STDOUT)
        wait_for_port(self.port, self.name, seconds=300, process=self.process)
        self.started = time.time()
        return self

    def invoke(self, payload_file):
        """Invokes the function with the event in payload_file and returns its answer."""
        name = "function" if self.package else "backdrop-lambda"
        with open(payload_file, "rb") as payload:
            request = urllib.request.Request(
                f"http://127.0.0.1:{self.port}/2015-03-31/functions/{name}/invocations",
                data=payload.read(), method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=600) as response:
                body = response.read()
        except urllib.error.HTTPError as error:
            sys.exit(f"invoking {self.name} failed: HTTP {error.code}: {error.read()[:2000]!r}")
        answer = json.loads(body)
        if isinstance(answer, dict) and "errorType" in answer:
            sys.exit(f"the function failed: {answer}")
        return answer

    def invoke_in_background(self, payload_file):
        """Invokes without waiting for the answer (the crash check kills the function meanwhile)."""
        thread = threading.Thread(target=self._invoke_quietly, args=(payload_file,), daemon=True)
        thread.start()
        return thread

    def _invoke_quietly(self, payload_file):
        try:
            self.invoke(payload_file)
        except BaseException:  # the function was killed: no answer is expected
            pass

    def kill(self):
        """SIGKILL the instance and everything below it, like a crash."""
        return kill_tree(self.process)

    def pids(self):
        """The processes of the function itself (not the emulator or cargo around it)."""
        found = []
        for pid in descendants(self.process.pid):
            try:
                exe = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
            except OSError:
                continue
            if exe in ("backdrop-lambda", "bootstrap"):
                found.append(pid)
        return found

    def report_memory(self):
        """Prints the peak RSS (VmHWM) of the function's process(es) and returns the largest, MiB."""
        peaks = []
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/status") as status:
                    peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
            except (OSError, StopIteration):
                continue
            peaks.append(int(peak) / 1024)
            print(f"peak RSS of the function process (pid {pid}): {peaks[-1]:.1f} MiB")
        if not peaks:
            sys.exit(f"no function process found under {self.name}")
        return max(peaks)


def descendants(pid):
    """Every process below pid (from /proc)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(process):
    """SIGKILL a process this script started and every process below it, like a crash."""
    tree = [process.pid] + descendants(process.pid)
    for pid in tree:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=30)
    return tree


def notified_keys(message):
    """The object keys an S3 notification message names (decoded)."""
    try:
        records = json.loads(message["Body"]).get("Records", [])
    except ValueError:
        return []
    return [urllib.parse.unquote_plus(r.get("s3", {}).get("object", {}).get("key", "")) for r in records]


def receive(sqs, queue_url, key, seconds=30):
    """The S3 notification messages of key from the queue (others are left for their visibility
    timeout)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        mine = [m for m in got.get("Messages", []) if key in notified_keys(m)]
        if mine:
            return mine
    sys.exit(f"moto sent no S3 notification of {key} to the queue within {seconds} s")


def claim_of(s3, key):
    """The claim object of the input key, if any."""
    for item in s3.list_objects_v2(Bucket=BUCKET, Prefix="state/").get("Contents", []):
        if item["Key"].startswith("state/scratch/"):
            continue  # URL mode's copies of checked versions, not claims
        claim = json.loads(s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read())
        if claim.get("label") == f"s3://{BUCKET}/{key}":
            return claim
    return None


def check_crash_and_resume(services, s3, sqs, queue_url, queue_arn, env, log, package=None):
    """Kills the function (and what runs it) mid-task, starts it again and delivers the same
    event: the task id in the claim object is resumed, the outputs appear, and the service saw
    exactly one create."""
    slow_url = start_emulator(services, processing_ms=8000)
    env = dict(env, PICWISH_BASE_URL=slow_url)
    key = "incoming/crash/bottle.png"
    with open(BOTTLE, "rb") as body:
        s3.put_object(Bucket=BUCKET, Key=key, Body=body.read(), ContentType="image/png",
                      Metadata={"batch-size": "1"})
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as event:
        json.dump(sqs_event(receive(sqs, queue_url, key), queue_arn), event)
    try:
        function = Function(services, env, log, package=package).start()
        first = function.invoke_in_background(event.name)
        # Mid-task: the service has the task, the claim records its id, the task is not final.
        deadline = time.time() + 300
        while True:
            tasks = json.load(urllib.request.urlopen(f"{slow_url}/__emulator/tasks"))
            claim = claim_of(s3, key)
            if tasks and claim and claim.get("stage") == "created" and claim.get("task_id"):
                break
            if not first.is_alive():
                sys.exit("crash check: the invocation ended before the task was recorded")
            if time.time() > deadline:
                sys.exit("crash check: no task created within 300 s")
            time.sleep(0.1)
        state = tasks[0]["state"]
        if len(tasks) != 1 or tasks[0]["task_id"] != claim["task_id"] or state < 0 or state == 1:
            sys.exit(f"crash check: not mid-task: tasks {tasks}, claim {claim}")
        killed = function.kill()
        first.join(timeout=60)
        print(f"crash check: killed {function.name} ({len(killed)} processes) with task "
              f"{claim['task_id']} in state {state}")

        function = Function(services, env, log, package=package).start()
        answer = function.invoke(event.name)
        print("crash check, the same event again:", json.dumps(answer))
    finally:
        os.unlink(event.name)
    counters = json.load(urllib.request.urlopen(f"{slow_url}/__emulator/counters"))
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="generated/crash/").get("Contents", [])}
    manifest = None
    if "generated/crash/bottle/manifest.json" in keys:
        manifest = json.loads(s3.get_object(Bucket=BUCKET, Key="generated/crash/bottle/manifest.json")["Body"].read())
    problems = []
    if answer.get("batchItemFailures"):
        problems.append(f"batch failures {answer['batchItemFailures']}")
    if "generated/crash/bottle/1.jpg" not in keys or manifest is None:
        problems.append(f"outputs missing: {sorted(keys)}")
    elif manifest["task_id"] != claim["task_id"]:
        problems.append(f"the manifest names task {manifest['task_id']}, not the claimed {claim['task_id']}")
    if counters["create_requests"] != 1 or counters["tasks_created"] != 1:
        problems.append(f"{counters['create_requests']} creates sent, {counters['tasks_created']} tasks")
    if problems:
        sys.exit("FAILED crash check: " + "; ".join(problems))
    print(f"crash check: task {claim['task_id']} resumed after the crash, 1 create; ok")


def sqs_event(messages, queue_arn):
    """The Lambda SQS event for messages received from the queue."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1",
            }
            for m in messages
        ]
    }


def cold_start(function, log_path):
    """The first invocation of a new instance with a small event (S3's test event, which the
    function acknowledges without work): its latency as the caller sees it, the init duration the
    runtime interface emulator reports (INIT REPORT: the bootstrap's start up to its first call
    for an event),
    and every log line of it carrying the request id."""
    function.log.flush()
    offset = os.path.getsize(log_path)
    started = time.time()
    answer = function.invoke(os.path.join(EVENTS, "sqs-test-event.json"))
    latency_ms = (time.time() - started) * 1000
    if answer.get("batchItemFailures"):
        sys.exit(f"cold start: the test event failed: {answer}")
    init_ms = None
    deadline = time.time() + 5
    while init_ms is None and time.time() < deadline:
        with open(log_path) as log:
            for line in log:
                # rapid's own figure, from the bootstrap's start to its first call for an event:
                # what Lambda reports as "Init Duration" (the REPORT line of this emulator
                # measures only its own bookkeeping).
                if "INIT REPORT(durationMs:" in line:
                    init_ms = float(line.split("INIT REPORT(durationMs:")[1].split(")")[0])
        time.sleep(0.1)
    if init_ms is None:
        sys.exit(f"cold start: the runtime interface emulator reported no init duration ({log_path})")
    # The function's JSON lines written during the invocation (RIE's own lines are plain text).
    request_ids, lines = set(), 0
    with open(log_path) as log:
        log.seek(offset)
        for line in log:
            if not line.startswith("{"):
                continue
            record = json.loads(line)
            if "_aws" in record:  # an EMF metric line, not a log line
                continue
            lines += 1
            if not record.get("requestId"):
                sys.exit(f"cold start: a log line of the invocation has no requestId: {line}")
            request_ids.add(record["requestId"])
    if len(request_ids) > 1:
        sys.exit(f"cold start: one invocation's log lines name several request ids: {request_ids}")
    size = os.path.getsize(function.package)
    bootstrap = os.path.getsize(os.path.join(function.bootstrap_dir, "bootstrap"))
    print(f"cold start of {os.path.basename(function.package)} ({size / 1e6:.1f} MB zipped, bootstrap "
          f"{bootstrap / 1e6:.1f} MB): init {init_ms:.1f} ms, first invocation {latency_ms:.0f} ms "
          f"(as the caller sees it, init included); {lines} log lines, each with its requestId")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pngs", nargs="*", help="PNG files to upload (default: the bundled bottle)")
    parser.add_argument("--check", action="store_true", help="also run the committed fixtures and assert every output")
    parser.add_argument("--prompt", default="a marble countertop in soft morning light")
    parser.add_argument("--out", default=os.path.join(ROOT, "backdrop-out", "lambda"))
    parser.add_argument("--report-memory", action="store_true",
                        help="print the function process's peak RSS after the uploads (VmHWM)")
    parser.add_argument("--release", action="store_true",
                        help="run a release build of the function (as deployed) instead of a debug one")
    parser.add_argument("--package", metavar="ZIP",
                        help="run this deployment package (dist/build's zip) under AWS's runtime "
                             "interface emulator instead of `cargo lambda watch`; measures its cold start")
    args = parser.parse_args()
    pngs = args.pngs or [BOTTLE]

    services = Services()
    try:
        moto_port = free_port()
        # moto with DynamoDB's conditional writes atomic, as the service's are.
        moto_server = os.path.join(ROOT, "infra", "moto-server")
        moto = services.start([moto_server, "-H", "127.0.0.1", "-p", str(moto_port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(moto_port, "moto_server", process=moto)
        moto_url = f"http://127.0.0.1:{moto_port}"
        emulator_url = start_emulator(services)
        print(f"moto (S3, SQS, DynamoDB) at {moto_url}; the PicWish emulator at {emulator_url}")

        aws = dict(endpoint_url=moto_url, region_name="us-east-1",
                   aws_access_key_id="testing", aws_secret_access_key="testing")
        s3, sqs = boto3.client("s3", **aws), boto3.client("sqs", **aws)
        s3.create_bucket(Bucket=BUCKET)
        # The key's shared request budget, as the template creates it.
        boto3.client("dynamodb", **aws).create_table(
            TableName=BUDGET_TABLE, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
        queue_url = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration={
            "QueueConfigurations": [{
                "QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"],
                "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "incoming/"},
                                                    {"Name": "suffix", "Value": ".png"}]}},
            }]
        })

        env = dict(os.environ,
                   AWS_ENDPOINT_URL_S3=moto_url, AWS_ENDPOINT_URL_SQS=moto_url,
                   AWS_ENDPOINT_URL_DYNAMODB=moto_url, SHARED_BUDGET_TABLE=BUDGET_TABLE,
                   AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                   AWS_REGION="us-east-1", S3_FORCE_PATH_STYLE="true",
                   PICWISH_API_KEY="emulator-key", PICWISH_BASE_URL=emulator_url,
                   DEFAULT_PROMPT=args.prompt, RUST_LOG="info")
        env.pop("PICWISH_API_KEY_SECRET_ID", None)
        log_path = os.path.join(tempfile.gettempdir(), f"backdrop-lambda-{os.getpid()}.log")
        log = open(log_path, "w")
        function = Function(services, env, log, release=args.release, package=args.package).start()
        print(f"{function.name} on 127.0.0.1:{function.port} (log: {log_path})")
        if args.package:
            cold_start(function, log_path)

        # Uploads go through the real notification path: S3 -> SQS -> this event.
        uploaded = []
        for i, png in enumerate(pngs):
            key = "incoming/" + ("local upload é/" if i == 0 else "") + os.path.basename(png)
            with open(png, "rb") as body:
                s3.put_object(Bucket=BUCKET, Key=key, Body=body.read(), ContentType="image/png",
                              Metadata={"batch-size": "2"})
            uploaded.append(key)
        messages = []
        deadline = time.time() + 30
        while len([m for m in messages if "TestEvent" not in m["Body"]]) < len(uploaded) and time.time() < deadline:
            got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            messages += got.get("Messages", [])
        if not messages:
            sys.exit("moto sent no S3 notification to the queue")
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as event:
            json.dump(sqs_event(messages, queue_arn), event)
        response = function.invoke(event.name)
        os.unlink(event.name)
        print("SQS batch (from moto's notifications):", json.dumps(response))
        if args.report_memory or args.package:
            function.report_memory()
        failures = response.get("batchItemFailures", [])
        expected = {k: k[len("incoming/"):-len(".png")] for k in uploaded}

        if args.check:
            fixture_keys = {
                "s3-direct.json": "incoming/fixtures/direct bottle.png",
                "eventbridge.json": "incoming/fixtures/bridge bottle.png",
                "sqs-s3.json": "incoming/fixtures/sqs bottle été.png",
                "sqs-test-event.json": None,
            }
            for fixture, key in fixture_keys.items():
                if key:
                    with open(BOTTLE, "rb") as body:
                        s3.put_object(Bucket=BUCKET, Key=key, Body=body.read(), Metadata={"batch-size": "1"})
                    expected[key] = key[len("incoming/"):-len(".png")]
                answer = function.invoke(os.path.join(EVENTS, fixture))
                print(f"{fixture}:", json.dumps(answer)[:300])
                failures += answer.get("batchItemFailures", [])
                for item in answer.get("objects", []):
                    if item.get("status") != "done":
                        sys.exit(f"{fixture}: {item}")
            # A duplicate delivery of the same batch creates nothing more.
            counters_before = json.load(urllib.request.urlopen(f"{emulator_url}/__emulator/counters"))
            answer = function.invoke(os.path.join(EVENTS, "sqs-s3.json"))
            counters_after = json.load(urllib.request.urlopen(f"{emulator_url}/__emulator/counters"))
            if counters_after["tasks_created"] != counters_before["tasks_created"]:
                sys.exit("a duplicate event created a second task")
            check_crash_and_resume(services, s3, sqs, queue_url, queue_arn, env, log, package=args.package)

        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []))
        shutil.rmtree(args.out, ignore_errors=True)
        missing = []
        for source, stem in expected.items():
            for name in ("1.jpg", "manifest.json"):
                key = f"generated/{stem}/{name}"
                if key not in keys:
                    missing.append(key)
                    continue
                path = os.path.join(args.out, stem, name)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                s3.download_file(BUCKET, key, path)
        counters = json.load(urllib.request.urlopen(f"{emulator_url}/__emulator/counters"))
        print(f"objects in s3://{BUCKET}:")
        for key in keys:
            print("  ", key)
        print(f"emulator: {counters['tasks_created']} tasks, {counters['responses_429']} x 429, "
              f"{counters['credits_charged']} credits (emulated)")
        print(f"results copied to {args.out}")
        if failures or missing or counters["responses_429"]:
            sys.exit(f"FAILED: batch failures {failures}, missing outputs {missing}, 429s {counters['responses_429']}")
        if args.check and counters["tasks_created"] != len(expected):
            sys.exit(f"FAILED: {counters['tasks_created']} tasks for {len(expected)} objects")
        print("local pipeline: ok")
    finally:
        services.stop()


if __name__ == "__main__":
    main()
