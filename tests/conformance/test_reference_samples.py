"""The reference documents' sample requests, replayed against a node with our own keys.

Each test is named after the sample it replays (the page and section of
`shared/spec/symetryml/`) and checks the answer's shape against the sample's: key names,
nesting, value types, HTTP status, `statusCode` and, where the reference fixes it, the
`statusString`. Values differ (our data, our keys, our ids); shapes must not. Where
fedstats deliberately answers otherwise (docs/conformance.md), the test asserts our
documented answer and says so.

Requests are built by hand here — the documented string to sign, signed with the
customer's key — so that nothing of fedstats' own client decides what goes on the wire.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from sklearn import datasets
from websockets.sync.client import connect

from fedstats.node.security.keys import new_secret_key
from fedstats.node.settings import Settings
from fedstats_harness.inprocess import Node, serve

_ids = itertools.count()


# --------------------------------------------------------------------------- the node
@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    yield from serve(Settings(data_dir=tmp_path_factory.mktemp("conformance")),
                     {"c1": new_secret_key(), "c2": new_secret_key()})


def _date(dt: datetime | None = None) -> str:
    """sym-date as the security page writes it: `yyyy-MM-dd HH:mm:ss;nanoseconds`."""
    now = dt or datetime.now(UTC)
    return f"{now:%Y-%m-%d %H:%M:%S};{now.microsecond * 1000 + next(_ids) % 1000}"


def _md5(body: bytes) -> str:
    return base64.b64encode(hashlib.md5(body).digest()).decode() if body else ""


def _hmac(secret: str, text: str) -> str:
    mac = hmac.new(base64.b64decode(secret), text.encode("utf-8"), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def rest(node: Node, method: str, path: str, query: str = "", body: Any = None, *,
         cid: str = "c1", resource: str | None = None, date: str | None = None,
         drop: str | None = None, secret: str | None = None) -> httpx.Response:
    """One request signed as the security page says: verb, MD5, secret, date, customer,
    body (when there is one), the resource (the path, or what `resource` says), the query
    (when there is one), each followed by a newline."""
    raw = b"" if body is None else (body if isinstance(body, bytes) else orjson.dumps(body))
    key = secret or node.keys[cid]
    when = date or _date()
    fields = [method, _md5(raw), key, when, cid]
    if raw:
        fields.append(raw.decode())
    fields.append(resource or path)
    if query:
        fields.append(query)
    headers = {"Authorization": _hmac(key, "".join(f + "\n" for f in fields)),
               "sym-date": when, "Content-MD5": _md5(raw), "Customer-ID": cid}
    if raw:
        headers["Content-Type"] = "application/json"
    if drop:
        headers.pop(drop)
    url = node.url + path + (f"?{query}" if query else "")
    return httpx.request(method, url, content=raw or None, headers=headers, timeout=30)


def ws_message(node: Node, service: str, payload: str, keys: list[str], *, full_url: bool,
               trailing: bool, prefixed: bool = True, cid: str = "c1",
               key: str | None = None) -> str:
    """A WebSocket message: the page's layout (path, joined by newlines) or the reference
    client's (the full ws:// URL, each field followed by a newline); with or without the
    `<length>,` prefix (the page's samples show both)."""
    key = key or node.keys[cid]
    when = _date()
    md5 = _md5(payload.encode())
    where = node.url.replace("http://", "ws://") if full_url else ""
    fields = [md5, key, when, cid, payload, f"{where}/symetry/ws/{service}", *keys]
    text = "".join(f + "\n" for f in fields) if trailing else "\n".join(fields)
    header = orjson.dumps({"headers": [when, md5, _hmac(key, text), cid],
                           "extraKeys": keys}).decode()
    return f"{len(header)},{header}{payload}" if prefixed else f"{header}-289907289{payload}"


def ws_call(node: Node, service: str, message: str) -> dict[str, Any]:
    with connect(node.url.replace("http://", "ws://") + f"/symetry/ws/{service}",
                 open_timeout=10) as ws:
        ws.send(message)
        answer = orjson.loads(ws.recv(30))
    assert isinstance(answer, dict)
    return answer


# --------------------------------------------------------------------------- iris
IRIS_NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width",
              "sepal_lengt_b1", "sepal_lengt_b2", "sepal_width_b1", "sepal_width_b2",
              "petal_length_b1", "petal_length_b2", "petal_width_b1", "petal_width_b2",
              "Iris_setosa", "Iris_versicolor", "Iris_virginica"]
IRIS_TYPES = ["C"] * 4 + ["B"] * 11


def iris_frame() -> dict[str, Any]:
    """The reference's Iris_rtlm layout (4 measures, 8 median bins, 3 class indicators)."""
    iris = datasets.load_iris()
    x, y = iris.data, iris.target
    above = x > np.median(x, axis=0)
    rows = []
    for i in range(len(y)):
        bins = [v for j in range(4) for v in ((0, 1) if above[i, j] else (1, 0))]
        classes = [int(y[i] == k) for k in range(3)]
        rows.append([repr(float(v)) for v in x[i]] + [str(v) for v in bins + classes])
    return {"attributeNames": IRIS_NAMES, "data": rows, "attributeTypes": IRIS_TYPES}


@pytest.fixture(scope="module")
def iris(node: Node) -> str:
    """Project `irisTest` holding the iris rows (learned by a signed REST learn)."""
    assert rest(node, "POST", "/symetry/rest/c1/projects", "pid=irisTest").status_code == 201
    learned = rest(node, "POST", "/symetry/rest/c1/projects/irisTest/learn", body=iris_frame())
    assert learned.status_code == 200
    return "irisTest"


def envelope(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The answer's JSONResponseClient, checked: its three keys, the status and its code."""
    body = resp.json()
    assert resp.status_code == status, body
    assert set(body) == {"statusCode", "statusString", "values"}
    assert body["statusCode"] == code and isinstance(body["statusString"], str)
    assert isinstance(body["values"], dict)
    return body


def build(node: Node, pid: str, model: str, algo: str, context: dict[str, Any]) -> dict:
    resp = rest(node, "POST", f"/symetry/rest/c1/projects/{pid}/build",
                f"algo={algo}&modelid={model}", context)
    envelope(resp, 202, "ACCEPTED")
    job = resp.headers["sym-job-id"]
    done = rest(node, "GET", f"/symetry/rest/c1/jobs/{job}", "wait=30")
    return envelope(done, 200, "OK")


def is_float_text(value: Any) -> bool:
    """A KSVSMap number: a string that reads back to the same float."""
    return isinstance(value, str) and repr(float(value)) == value


# --------------------------------------------------------------------------- security page
def test_security_authentication_errors_unauthorized_sample(node: Node) -> None:
    """symetryml-rest-api-security.md, "Authentication Errors": 401 UNAUTHORIZED,
    statusString "Invalid Signature", values.stringToSign with SECRETKEY for the secret."""
    resp = rest(node, "GET", "/symetry/rest/c1/projects/list", secret=node.keys["c2"])
    body = envelope(resp, 401, "UNAUTHORIZED")
    assert body["statusString"].startswith("Invalid Signature")
    sts = body["values"]["stringToSign"]
    assert isinstance(sts, str) and sts.startswith("GET\n\nSECRETKEY\n")
    assert sts.endswith("\nc1\n/symetry/rest/c1/projects/list\n")
    assert node.keys["c1"] not in resp.text


@pytest.mark.parametrize(("change", "text"), [
    ({"secret": "c2"}, "Invalid Signature"),
    ({"cid": "c9"}, "Invalid User"),
    ({"drop": "Authorization"}, "Authentication header is null"),
    ({"drop": "sym-date"}, "sym-date header is null"),
    ({"date": "2014-07-31T08:01:07"}, "Invalid Date Format"),
    ({"date": "stale"}, "Please update your server time, it is likely out of sync with UTC"),
    ({"date": "ahead"}, "Please update your server time, it is likely out of sync with UTC"),
], ids=["signature", "user", "no-authorization", "no-date", "date-format", "stale", "ahead"])
def test_security_authentication_error_codes_table(node: Node, change: dict[str, str],
                                                    text: str) -> None:
    """The page's error-code table: each refusal's statusString starts with its text.
    (The page gives 400 for the missing-header, date and MD5 rows; fedstats answers 401
    for every authentication failure: docs/conformance.md.)"""
    kwargs: dict[str, Any] = {}
    if "secret" in change:
        kwargs["secret"] = node.keys[change["secret"]]
    if "cid" in change:  # a customer the node does not know signs for its own path
        kwargs.update(cid="c9", secret=new_secret_key())
    if "drop" in change:
        kwargs["drop"] = change["drop"]
    if change.get("date") == "stale":
        kwargs["date"] = _date(datetime.now(UTC) - timedelta(minutes=6))
    elif change.get("date") == "ahead":
        kwargs["date"] = _date(datetime.now(UTC) + timedelta(minutes=2))
    elif "date" in change:
        kwargs["date"] = change["date"]
    cid = kwargs.get("cid", "c1")
    resp = rest(node, "GET", f"/symetry/rest/{cid}/projects/list", **kwargs)
    assert envelope(resp, 401, "UNAUTHORIZED")["statusString"].startswith(text)


def test_security_md5_do_not_match_row(node: Node) -> None:
    body = orjson.dumps({"attributeNames": ["x"], "attributeTypes": ["C"], "data": [["1"]]})
    path = "/symetry/rest/c1/projects/nope/learn"
    when = _date()
    key = node.keys["c1"]
    wrong = _md5(b"something else")
    sts = "".join(f + "\n" for f in ["POST", wrong, key, when, "c1", body.decode(), path])
    resp = httpx.post(node.url + path, content=body, timeout=30, headers={
        "Authorization": _hmac(key, sts), "sym-date": when, "Content-MD5": wrong})
    assert envelope(resp, 401, "UNAUTHORIZED")["statusString"].startswith("Md5 do not match")


def test_security_canonicalized_resource_from_the_protocol_name(node: Node) -> None:
    """"CanonicalizedResource: <HTTP-Request-URI, from the protocol name up to the query
    string>": the full URL as addressed is accepted, as is the path alone."""
    path = "/symetry/rest/c1/projects/list"
    full = rest(node, "GET", path, resource=node.url + path)
    assert envelope(full, 200, "OK")["values"]["stringList"]["values"] is not None
    envelope(rest(node, "GET", path), 200, "OK")
    elsewhere = rest(node, "GET", path, resource="http://elsewhere:1" + path)
    envelope(elsewhere, 401, "UNAUTHORIZED")


# --------------------------------------------------------------------------- projects page
def test_projects_create_project_sample(node: Node) -> None:
    """POST .../projects?pid=testIris -> 201 {"statusCode":"CREATED","statusString":
    "Project Created with id:testIris","values":{}}."""
    resp = rest(node, "POST", "/symetry/rest/c1/projects", "pid=testIris")
    body = envelope(resp, 201, "CREATED")
    assert body == {"statusCode": "CREATED", "statusString": "Project Created with id:testIris",
                    "values": {}}


def test_projects_create_project_conflict_sample(node: Node) -> None:
    rest(node, "POST", "/symetry/rest/c1/projects", "pid=twice")
    envelope(rest(node, "POST", "/symetry/rest/c1/projects", "pid=twice"), 409, "CONFLICT")


def test_projects_create_project_as_sym_rest_rc_sends_it(node: Node) -> None:
    """The reference's client: `persist=true&type=cpu&enableHistogram=true` and a body of
    string parameters; an unknown project parameter is a 400 naming it."""
    query = "pid=rcProject&persist=true&type=cpu&enableHistogram=true"
    ok = rest(node, "POST", "/symetry/rest/c1/projects", query,
              {"sml_project_autosave": "true", "enable_histogram": "true"})
    envelope(ok, 201, "CREATED")
    bad = rest(node, "POST", "/symetry/rest/c1/projects", "pid=rcOther",
               {"sml_project_order": "1"})
    assert "sml_project_order" in envelope(bad, 400, "BAD_REQUEST")["statusString"]
    sequence = rest(node, "POST", "/symetry/rest/c1/projects", "pid=seq&type=sequence")
    assert "sequence" in envelope(sequence, 400, "BAD_REQUEST")["statusString"]


def test_projects_list_sample(node: Node, iris: str) -> None:
    """{"values":{"stringList":{"values":["irisTest","anotherProject"]}}}."""
    body = envelope(rest(node, "GET", "/symetry/rest/c1/projects/list"), 200, "OK")
    listed = body["values"]["stringList"]["values"]
    assert isinstance(listed, list) and iris in listed and all(isinstance(p, str) for p in listed)


def test_projects_information_sample(node: Node, iris: str) -> None:
    """GET .../projects/irisTest/info -> smlInfo with modelsList, modelTypeList,
    attributeNames, attributeIndexes, attributeTypes and pid, typed as the sample."""
    build(node, iris, "infoLDA", "lda", {"targets": ["12"], "inputAttributes": ["0", "1"]})
    body = envelope(rest(node, "GET", f"/symetry/rest/c1/projects/{iris}/info"), 200, "OK")
    info = body["values"]["smlInfo"]
    assert info["pid"] == iris
    assert info["attributeNames"] == IRIS_NAMES and info["attributeTypes"] == IRIS_TYPES
    assert info["attributeIndexes"] == list(range(15))
    assert "infoLDA" in info["modelsList"]
    assert info["modelTypeList"][info["modelsList"].index("infoLDA")] == "lda"


def test_projects_delete_sample(node: Node) -> None:
    """"deleted Project with id[r1] from Customer[c1] store"; then 400 for it."""
    rest(node, "POST", "/symetry/rest/c1/projects", "pid=r1")
    body = envelope(rest(node, "DELETE", "/symetry/rest/c1/projects/r1"), 200, "OK")
    assert body["statusString"] == "deleted Project with id[r1] from Customer[c1] store"
    envelope(rest(node, "GET", "/symetry/rest/c1/projects/r1/info"), 400, "BAD_REQUEST")


# --------------------------------------------------------------------------- modeling page
def test_modeling_build_model_sample(node: Node, iris: str) -> None:
    """POST .../build?algo=lda&modelid=testLDA, body MLContext with string indexes ->
    202 {"statusCode":"ACCEPTED","statusString":"Job Created"} with Location (and
    sym-job-id); GET the job -> 200 "Job is finished"."""
    resp = rest(node, "POST", f"/symetry/rest/c1/projects/{iris}/build",
                "algo=lda&modelid=testLDA", {"targets": ["12"], "inputAttributes": ["0", "1", "2"]})
    assert envelope(resp, 202, "ACCEPTED")["statusString"] == "Job Created"
    job = resp.headers["sym-job-id"]
    assert resp.headers["Location"] == f"/symetry/rest/c1/jobs/{job}"
    done = envelope(rest(node, "GET", f"/symetry/rest/c1/jobs/{job}", "wait=30"), 200, "OK")
    assert done["statusString"] == "Job is finished"


def test_jobs_job_information_sample(node: Node, iris: str) -> None:
    """symetryml-job-information.md: JobInfo's fields and types; 400 for an unknown job."""
    resp = rest(node, "POST", f"/symetry/rest/c1/projects/{iris}/build",
                "algo=mlr&modelid=jobMLR", {"targets": ["0"], "inputAttributes": ["1", "2"]})
    job = resp.headers["sym-job-id"]
    done = envelope(rest(node, "GET", f"/symetry/rest/c1/jobs/{job}", "wait=30"), 200, "OK")
    info = done["values"]["jobinfo"]
    types = {"jobId": int, "jobType": str, "owner": str, "startingDate": int, "current": int,
             "maximum": int, "isOnBoundedExecutor": bool, "isStarted": bool, "isDone": bool,
             "details": dict}
    assert {k: type(info[k]) for k in types} == types
    assert info["jobId"] == int(job) and info["isDone"] is True and info["owner"] == "c1"
    envelope(rest(node, "GET", "/symetry/rest/c1/jobs/987654"), 400, "BAD_REQUEST")


def test_modeling_model_information_sample(node: Node, iris: str) -> None:
    """GET .../models/ldaOptimized -> ModelInfo (Appendix A) with the sample's keys."""
    build(node, iris, "ldaOptimized", "lda",
          {"targetAttributeNames": ["Iris_versicolor"],
           "inputAttributeNames": ["petal_length", "petal_width", "sepal_width"]})
    body = envelope(rest(node, "GET", f"/symetry/rest/c1/projects/{iris}/models/ldaOptimized"),
                    200, "OK")
    info = body["values"]["modelInfo"]
    types = {"modelId": str, "modelType": str, "modelBuilt": int, "buildTime": int,
             "creationDate": int, "attributeNames": list, "attributeIndexes": list,
             "attributeTypes": list, "predictInfo": list, "scoreInfo": list,
             "targetNames": list, "targetindexes": list, "info": dict, "extra": dict}
    assert {k: type(info[k]) for k in types} == types
    assert info["modelId"] == "ldaOptimized" and info["modelType"] == "lda"
    assert info["attributeNames"] == ["petal_length", "petal_width", "sepal_width"]
    assert info["attributeIndexes"] == [2, 3, 1]
    assert info["targetNames"] == ["Iris_versicolor"] and info["targetindexes"] == [13]
    assert {"res", "resZ", "z0", "z1GTz0"} <= set(info["predictInfo"])
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in info["info"].items())
    models = envelope(rest(node, "GET", f"/symetry/rest/c1/projects/{iris}/models"), 200, "OK")
    assert "ldaOptimized" in models["values"]["stringList"]["values"]


def test_modeling_delete_model_sample(node: Node, iris: str) -> None:
    build(node, iris, "gone", "mlr", {"targets": ["0"], "inputAttributes": ["1"]})
    path = f"/symetry/rest/c1/projects/{iris}/models/gone"
    envelope(rest(node, "DELETE", path), 200, "OK")
    envelope(rest(node, "GET", path), 400, "BAD_REQUEST")


@pytest.mark.parametrize(("algo", "extra", "named"), [
    ("ridge", {"lambda": "0.1"}, "lambda"),
    ("mlr", {"alpha": "1"}, "alpha"),
    ("lasso", {"lambda": "lots"}, "lambda"),
    ("elasticnet", {"eta": "2"}, "eta"),
    ("elasticnet", {"standardize": "yes"}, "standardize"),
    ("lda", {"kmeans_k": "3"}, "kmeans_k"),
], ids=["ridge-lambda", "mlr-alpha", "lasso-lambda-text", "enet-eta-2", "enet-standardize",
        "lda-kmeans"])
def test_modeling_mlcontext_build_parameters_unknown_or_ill_typed(
        node: Node, iris: str, algo: str, extra: dict[str, str], named: str) -> None:
    """modeling-api.md, "MLContext Build Parameters": a parameter an algorithm does not
    take, or one of the wrong type, fails the job with 400 naming it (never ignored)."""
    resp = rest(node, "POST", f"/symetry/rest/c1/projects/{iris}/build",
                f"algo={algo}&modelid=bad{next(_ids)}",
                {"targets": ["0"] if algo != "lda" else ["12"], "inputAttributes": ["1", "2"],
                 "extraParameters": extra})
    job = resp.headers["sym-job-id"]
    failed = envelope(rest(node, "GET", f"/symetry/rest/c1/jobs/{job}", "wait=30"),
                      400, "BAD_REQUEST")
    assert repr(named) in failed["statusString"]


@pytest.mark.parametrize("algo", ["lr", "kmeans", "rf_classifier", "hba"])
def test_modeling_model_algorithm_id_not_offered(node: Node, iris: str, algo: str) -> None:
    resp = rest(node, "POST", f"/symetry/rest/c1/projects/{iris}/build",
                f"algo={algo}&modelid=no", {"targets": ["12"]})
    assert repr(algo) in envelope(resp, 400, "BAD_REQUEST")["statusString"]


@pytest.mark.parametrize(("path", "query", "name"), [
    ("/autoSelect/Iris_rtlm.csv", "task=binary_classifier&modelid=as1", "autoSelect"),
    ("/kmeansOptimize", "", "kmeansOptimize"),
    ("/reduce", "modelid=r&algo=lda&heuristic=default", "reduce"),
    ("/learnpredict/testLDA", "", "learnpredict"),
], ids=["autoselect-data-source", "kmeans-optimize", "reduce", "learnpredict"])
def test_documented_endpoints_not_offered_are_400_naming_them(
        node: Node, iris: str, path: str, query: str, name: str) -> None:
    resp = rest(node, "POST", f"/symetry/rest/c1/projects/{iris}{path}", query, {})
    assert name in envelope(resp, 400, "BAD_REQUEST")["statusString"]


# --------------------------------------------------------------------------- prediction page
def _check_lda_rows(rows: Any, n: int) -> None:
    """KSVSMap: a list of one map of strings per row; LDA's keys, numbers round-trip."""
    assert isinstance(rows, list) and len(rows) == n
    for row in rows:
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in row.items())
        assert row["res"] in ("0", "1") and row["z1GTz0"] == "true"
        assert is_float_text(row["resZ"]) and is_float_text(row["z0"])
        assert row["res"] == ("1" if float(row["resZ"]) > float(row["z0"]) else "0")


def test_prediction_sample_request_response(node: Node, iris: str) -> None:
    """POST .../predict/testLDA with the sample's body -> {"values":{"KSVSMap":{"values":
    [{"res":"1","resZ":...,"z0":...,...}]}}} (the reference's table names z1GTz0)."""
    build(node, iris, "predLDA", "lda", {"targetAttributeNames": ["Iris_setosa"],
                                         "inputAttributeNames": ["petal_length", "sepal_width"]})
    sample = {"attributeNames": ["petal_length", "sepal_width"], "data": [["1.5", "5"]],
              "attributeTypes": ["C", "C"]}
    resp = rest(node, "POST", f"/symetry/rest/c1/projects/{iris}/predict/predLDA", body=sample)
    body = envelope(resp, 200, "OK")
    assert body["statusString"] == "OK" and list(body["values"]) == ["KSVSMap"]
    assert list(body["values"]["KSVSMap"]) == ["values"]
    _check_lda_rows(body["values"]["KSVSMap"]["values"], 1)
    assert body["values"]["KSVSMap"]["values"][0]["res"] == "1"  # a setosa-like flower


def test_prediction_http_responses_invalid_ids(node: Node, iris: str) -> None:
    """400 for an unknown project; for an unknown model the reference answers 500, fedstats
    400 (a client's mistake: docs/conformance.md)."""
    frame = {"attributeNames": ["x"], "data": [["1"]], "attributeTypes": ["C"]}
    envelope(rest(node, "POST", "/symetry/rest/c1/projects/r2/predict/m", body=frame),
             400, "BAD_REQUEST")
    envelope(rest(node, "POST", f"/symetry/rest/c1/projects/{iris}/predict/m3", body=frame),
             400, "BAD_REQUEST")


# --------------------------------------------------------------------------- websocket page
WS_LEARN = ('{"attributeNames":["sepal_length","sepal_width","petal_length","petal_width"],'
            '"data":[["4.3","3","1.1","0.1"],["4.8","3","1.4","0.1"]],'
            '"attributeTypes":["C","C","C","C"]}')
WS_PREDICT = ('{"attributeNames":["sepal_length","sepal_width","petal_length"],'
              '"data":[["4.3","3","1.1"]],"attributeTypes":["C","C","C"]}')


@pytest.mark.parametrize(("full_url", "trailing", "prefixed"), [
    (False, False, True), (True, True, True), (True, False, True), (False, True, True),
    (False, False, False)],
    ids=["page-layout", "sym-rest-rc-layout", "full-url-joined", "path-trailing",
         "page-sample-unprefixed"])
def test_websocket_learning_sample(node: Node, full_url: bool, trailing: bool,
                                   prefixed: bool) -> None:
    """ws://.../symetry/ws/learn, extraKeys [project]: answered OK with the row count,
    whether the service path is signed as the path or as the full URL, in the page's
    joined layout or with the reference client's trailing newline."""
    pid = f"wsLearn{next(_ids)}"
    rest(node, "POST", "/symetry/rest/c1/projects", f"pid={pid}")
    message = ws_message(node, "learn", WS_LEARN, [pid], full_url=full_url, trailing=trailing,
                         prefixed=prefixed)
    answer = ws_call(node, "learn", message)
    assert set(answer) == {"statusCode", "statusString", "values"}
    assert answer["statusCode"] == "OK" and answer["values"]["rows"] == 2


def test_websocket_predicting_sample(node: Node, iris: str) -> None:
    """ws://.../symetry/ws/predict, extraKeys [project, model]: the same KSVSMap as REST."""
    build(node, iris, "wsLDA", "lda", {"targetAttributeNames": ["Iris_setosa"],
                                       "inputAttributeNames": ["sepal_length", "sepal_width",
                                                               "petal_length"]})
    for full_url, trailing in ((False, False), (True, True)):
        message = ws_message(node, "predict", WS_PREDICT, [iris, "wsLDA"], full_url=full_url,
                             trailing=trailing)
        answer = ws_call(node, "predict", message)
        assert answer["statusCode"] == "OK" and answer["statusString"] == "OK"
        assert list(answer["values"]) == ["KSVSMap"]
        _check_lda_rows(answer["values"]["KSVSMap"]["values"], 1)
    over_rest = rest(node, "POST", f"/symetry/rest/c1/projects/{iris}/predict/wsLDA",
                     body=orjson.loads(WS_PREDICT)).json()
    assert over_rest["values"] == answer["values"]


def test_websocket_bad_signature_is_unauthorized_with_string_to_sign(node: Node) -> None:
    message = ws_message(node, "learn", WS_LEARN, ["any"], full_url=False, trailing=False)
    tampered = message.replace('"attributeNames"', '"attributeNames" ', 1)  # payload changed
    answer = ws_call(node, "learn", tampered)
    assert answer["statusCode"] == "UNAUTHORIZED"
    assert answer["statusString"].startswith("Md5 do not match")
    wrong = ws_message(node, "learn", WS_LEARN, ["any"], full_url=True, trailing=True,
                       key=node.keys["c2"])
    answer = ws_call(node, "learn", wrong)
    assert answer["statusCode"] == "UNAUTHORIZED"
    assert answer["statusString"].startswith("Invalid Signature")
    assert answer["values"]["stringToSign"].startswith(_md5(WS_LEARN.encode()) + "\nSECRETKEY\n")
