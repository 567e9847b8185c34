"""Checks on rendered manifests that neither kubernetes-validate nor checkov make.

Run by scripts/validate-k8s.sh, with the Python of its venv (PyYAML, jsonschema, referencing and
kubernetes-validate installed):

    python checks.py RENDERED_DIR NATIVE_DIR K8S_VERSION

RENDERED_DIR holds one `kubectl kustomize` output per variant (`embedded-hpa.yaml`, ...,
`batch-job.yaml`). For each, this writes the objects of built-in kinds to NATIVE_DIR for
`kubernetes-validate --strict`, validates the custom resources it knows (KEDA's ScaledObject)
against the strict schema beside this file, and checks what the manifests promise in their
comments: one autoscaler at a time, a grace period that covers the worker's drain, pinned images,
one SQLite master, push mode aimed at the headless Service, references that resolve. Prints every problem; exits 1 if there was one.
"""

import json
import re
import sys
from pathlib import Path

import jsonschema
import yaml
from referencing import Registry, Resource

HERE = Path(__file__).resolve().parent
CUSTOM_SCHEMAS = {("keda.sh/v1alpha1", "ScaledObject"): HERE / "keda-scaledobject-v1alpha1.schema.json"}
WORKLOADS = {"Deployment", "StatefulSet", "Job"}
# The worker's drain (LEASEHOLD_DRAIN_SECS) + up to 5 s to hand tasks back + a margin.
GRACE_OVER_DRAIN_SECS = 15
PINNED_IMAGE = re.compile(r"^[^\s:@]+/[^\s:@]+(:(?!latest$)[\w][\w.-]*)?(@sha256:[0-9a-f]{64})?$")


def main(rendered_dir: str, native_dir: str, k8s_version: str) -> int:
    registry = kubernetes_registry(k8s_version)
    problems = []
    for path in sorted(Path(rendered_dir).glob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        native = [d for d in docs if (d["apiVersion"], d["kind"]) not in CUSTOM_SCHEMAS]
        Path(native_dir, path.name).write_text(yaml.safe_dump_all(native))
        found = validate_custom(docs, registry) + check_variant(path.stem, docs)
        problems += [f"{path.name}: {p}" for p in found]
        print(f"{path.name}: {len(docs)} objects, {len(docs) - len(native)} custom, "
              f"{len(found)} problem(s)")
    for problem in problems:
        print(f"ERROR {problem}")
    return 1 if problems else 0


def kubernetes_registry(k8s_version: str) -> Registry:
    """Kubernetes' own definitions, so a custom schema can refer to ObjectMeta or HPA behavior."""
    import kubernetes_validate

    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    definitions = json.loads((root / f"v{k8s_version}-local-strict" / "_definitions.json").read_text())
    return Registry().with_resource(definitions["$id"], Resource.from_contents(definitions))


def validate_custom(docs, registry):
    problems = []
    for doc in docs:
        schema_path = CUSTOM_SCHEMAS.get((doc["apiVersion"], doc["kind"]))
        if schema_path is None:
            continue
        validator = jsonschema.Draft202012Validator(json.loads(schema_path.read_text()), registry=registry)
        for error in validator.iter_errors(doc):
            where = ".".join(str(p) for p in error.absolute_path)
            problems.append(f"{name(doc)} does not match {schema_path.name} at {where}: {error.message}")
    return problems


def check_variant(variant, docs):
    problems = []
    problems += check_images(docs)
    problems += check_references(docs, external=variant == "batch-job")
    problems += check_worker_grace(docs)
    if variant != "batch-job":
        problems += check_autoscaling(docs)
        problems += check_master(variant.split("-")[0], docs)
        problems += check_push(docs)
    return problems


def check_images(docs):
    return [f"{name(w)}: image {c['image']!r} is not pinned (registry/name:tag, no `latest`)"
            for w in workloads(docs) for c in containers(w) if not PINNED_IMAGE.match(c["image"])]


def check_references(docs, external):
    """ConfigMaps, Secrets and ServiceAccounts named by a pod exist (the batch Job's live in the
    deployed overlay, so only their names are checked), and every Service selects a pod."""
    known = {(d["kind"], d["metadata"]["name"]) for d in docs}
    deployed = {("Secret", "leasehold-tokens"), ("ServiceAccount", "leasehold-worker")}
    problems = []
    for w in workloads(docs):
        for ref in references(w):
            if ref not in known and not (external and ref in deployed):
                problems.append(f"{name(w)} refers to {ref[0]} {ref[1]!r}, which is not rendered")
    for svc in by_kind(docs, "Service"):
        selector = svc["spec"]["selector"].items()
        if not any(selector <= pod_labels(w).items() for w in workloads(docs)):
            problems.append(f"{name(svc)} selects no pod")
    return problems


def references(workload):
    spec = pod_spec(workload)
    refs = {("ServiceAccount", spec.get("serviceAccountName", "default"))}
    for c in containers(workload):
        for source in c.get("envFrom", []):
            if "configMapRef" in source:
                refs.add(("ConfigMap", source["configMapRef"]["name"]))
        for var in c.get("env", []):
            key_ref = var.get("valueFrom", {}).get("secretKeyRef")
            if key_ref:
                refs.add(("Secret", key_ref["name"]))
    return refs


def check_worker_grace(docs):
    problems = []
    for w in workloads(docs):
        if not any(c["name"] == "worker" for c in containers(w)):
            continue
        drain = int(env_value(w, docs, "LEASEHOLD_DRAIN_SECS") or 25)  # the worker's default
        grace = pod_spec(w).get("terminationGracePeriodSeconds", 30)
        if grace < drain + GRACE_OVER_DRAIN_SECS:
            problems.append(f"{name(w)}: terminationGracePeriodSeconds {grace} < drain {drain} "
                            f"+ {GRACE_OVER_DRAIN_SECS}")
    return problems


def check_autoscaling(docs):
    """Exactly one autoscaler owns the workers' replica count, with a scale-down slower than a
    worker's drain, and the Deployment leaves `replicas` to it."""
    worker = one(docs, "Deployment", "leasehold-worker")
    hpas = [d for d in by_kind(docs, "HorizontalPodAutoscaler") if targets_worker(d)]
    scaled = [d for d in by_kind(docs, "ScaledObject") if targets_worker(d)]
    if len(hpas) + len(scaled) != 1:
        return [f"{len(hpas)} HPA(s) and {len(scaled)} ScaledObject(s) scale the workers: want one"]
    if "replicas" in worker["spec"]:
        return ["the worker Deployment sets replicas, which the autoscaler owns"]
    autoscaler = (hpas + scaled)[0]
    spec = autoscaler["spec"]
    if hpas:
        low, high, behavior = spec["minReplicas"], spec["maxReplicas"], spec.get("behavior", {})
    else:
        low, high = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
        behavior = spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior", {})
    problems = [] if low <= high else [f"{name(autoscaler)}: min {low} > max {high}"]
    problems += check_scale_down(autoscaler, behavior, pod_spec(worker).get("terminationGracePeriodSeconds", 30))
    for trigger in spec.get("triggers", []):
        problems += check_threshold(trigger, env_value(worker, docs, "LEASEHOLD_CONCURRENCY"))
    return problems


def check_scale_down(autoscaler, behavior, grace):
    down = behavior.get("scaleDown", {})
    window = down.get("stabilizationWindowSeconds", 300)
    problems = []
    if window < grace:
        problems.append(f"{name(autoscaler)}: scale-down window {window} s is shorter than a drain ({grace} s)")
    for policy in down.get("policies", []):
        if policy["periodSeconds"] < grace:
            problems.append(f"{name(autoscaler)}: a scale-down step of {policy['periodSeconds']} s "
                            f"is shorter than a drain ({grace} s)")
    return problems


def check_threshold(trigger, concurrency):
    """The queue-depth trigger counts tasks per worker, the same unit as LEASEHOLD_CONCURRENCY."""
    threshold = trigger["metadata"].get("threshold") or trigger["metadata"].get("targetValue")
    if concurrency is not None and threshold is not None and float(threshold) != float(concurrency):
        return [f"trigger {trigger.get('name', trigger['type'])}: threshold {threshold} "
                f"!= LEASEHOLD_CONCURRENCY {concurrency}"]
    return []


def check_master(store, docs):
    masters = [w for w in workloads(docs) if w["metadata"]["name"] == "leasehold-master"]
    if len(masters) != 1:
        return [f"{len(masters)} master workloads rendered: want one"]
    master = masters[0]
    if store == "embedded":
        return check_sqlite_master(master, docs)
    problems = []
    if master["kind"] != "Deployment" or master["spec"].get("replicas", 1) < 2:
        problems.append(f"{name(master)}: the PostgreSQL master is a Deployment of two or more")
    if not any(pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels(master).items()
               for pdb in by_kind(docs, "PodDisruptionBudget")):
        problems.append(f"{name(master)}: no PodDisruptionBudget")
    return problems


def check_sqlite_master(master, docs):
    """One writer: a StatefulSet of exactly one, its database on its own claim."""
    problems = []
    if master["kind"] != "StatefulSet" or master["spec"].get("replicas") != 1:
        problems.append(f"{name(master)}: the SQLite master is a StatefulSet of exactly one replica")
    claims = {t["metadata"]["name"] for t in master["spec"].get("volumeClaimTemplates", [])}
    mounts = {m["mountPath"]: m["name"] for c in containers(master) for m in c.get("volumeMounts", [])}
    url = env_value(master, docs, "LEASEHOLD_DATABASE_URL") or ""
    path = url.removeprefix("sqlite://").removeprefix("sqlite:")
    if not any(path.startswith(mount.rstrip("/") + "/") and volume in claims for mount, volume in mounts.items()):
        problems.append(f"{name(master)}: database {url!r} is not on a volumeClaimTemplate")
    return problems


def check_push(docs):
    """In push mode the master's DNS name is the headless worker Service, on the workers' port,
    and pushes no more tasks at once than a worker runs."""
    master = next(w for w in workloads(docs) if w["metadata"]["name"] == "leasehold-master")
    target = env_value(master, docs, "LEASEHOLD_PUSH_DNS")
    if target is None:
        return []
    worker = one(docs, "Deployment", "leasehold-worker")
    host, _, port = target.rpartition(":")
    services = [s for s in by_kind(docs, "Service") if s["metadata"]["name"] == host.split(".")[0]]
    if not (services and services[0]["spec"].get("clusterIP") == "None"
            and services[0]["spec"]["selector"].items() <= pod_labels(worker).items()
            and any(str(p["port"]) == port for p in services[0]["spec"]["ports"])):
        return [f"LEASEHOLD_PUSH_DNS {target!r} is not the headless worker Service and its port"]
    capacity = int(env_value(master, docs, "LEASEHOLD_PUSH_CAPACITY") or 4)
    concurrency = int(env_value(worker, docs, "LEASEHOLD_CONCURRENCY") or 4)
    if capacity > concurrency:
        return [f"LEASEHOLD_PUSH_CAPACITY {capacity} > the workers' concurrency {concurrency}"]
    return []


# Helpers over rendered objects.

def name(doc):
    return f"{doc['kind']}/{doc['metadata']['name']}"


def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def one(docs, kind, wanted):
    return next(d for d in by_kind(docs, kind) if d["metadata"]["name"] == wanted)


def workloads(docs):
    return [d for d in docs if d["kind"] in WORKLOADS]


def pod_spec(workload):
    return workload["spec"]["template"]["spec"]


def pod_labels(workload):
    return workload["spec"]["template"]["metadata"].get("labels", {})


def containers(workload):
    spec = pod_spec(workload)
    return spec.get("initContainers", []) + spec["containers"]


def targets_worker(autoscaler):
    ref = autoscaler["spec"]["scaleTargetRef"]
    return ref.get("kind", "Deployment") == "Deployment" and ref["name"] == "leasehold-worker"


def env_value(workload, docs, var):
    """A variable's value in the first container, from `env` or an `envFrom` ConfigMap."""
    container = pod_spec(workload)["containers"][0]
    for entry in container.get("env", []):
        if entry["name"] == var and "value" in entry:
            return entry["value"]
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef", {}).get("name")
        for cm in by_kind(docs, "ConfigMap"):
            if cm["metadata"]["name"] == ref and var in cm.get("data", {}):
                return cm["data"][var]
    return None


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
