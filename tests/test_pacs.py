"""Segmenting straight from a real Orthanc (DICOMweb plugin): the CLI end to end with --push,
the SEG found by QIDO and decoded voxel-identical to the NIfTI mask, worklists with failure
isolation and skip-on-rerun, browsing, and the hostile-server cases (too large, too many
instances, refused connection, a connection dropped mid-download, a series of mixed sizes)."""

from __future__ import annotations

import json
import os
import stat
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from medseg.cli import main
from medseg.errors import InputError, MedsegError
from medseg.io import read_label_map
from medseg.io.dicom import series_datasets
from medseg.io.names import series_case_name
from medseg.pacs.auth import TOKEN_ENV, Credentials, credentials_from_file
from medseg.pacs.client import Server, ServerError, open_client
from medseg.pacs.query import check_uid, list_series, list_studies
from medseg.pacs.retrieve import download_series
from medseg.pacs.worklist import read_worklist
from tests.pacs_server import free_port, orthanc_available, running_orthanc, tiny_server

ROOT = Path(__file__).resolve().parents[1]
SERIES = ROOT / "sample_data" / "dicom" / "ct_phantom_001"
MODEL = ROOT / "sample_data" / "models" / "abdomen_ct"
UNKNOWN_STUDY = "1.2.826.0.1.3680043.8.498.999"


def _source_uids():
    first = pydicom.dcmread(next(SERIES.iterdir()), stop_before_pixels=True)
    return str(first.StudyInstanceUID), str(first.SeriesInstanceUID)


def _mixed_size_series(folder: Path) -> str:
    """Three slices of the phantom as a new CT study whose middle slice is 48x48, not 96x96."""
    study, series = generate_uid(), generate_uid()
    folder.mkdir()
    for i, ds in enumerate(series_datasets(SERIES)[:3]):  # three neighbouring slices
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        if i == 1:
            px = ds.pixel_array[:48, :48].copy()
            ds.Rows, ds.Columns, ds.PixelData = 48, 48, px.tobytes()
        ds.save_as(folder / f"{i}.dcm")
    return str(study)


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    if not orthanc_available():
        pytest.skip("needs Debian's orthanc and orthanc-dicomweb (apt-get install orthanc "
                    "orthanc-dicomweb)")
    work = tmp_path_factory.mktemp("orthanc")
    with running_orthanc(work / "server") as server:
        server.upload(sorted(SERIES.iterdir()))
        mixed = _mixed_size_series(work / "mixed")
        server.upload(sorted((work / "mixed").iterdir()))
        yield SimpleNamespace(dicomweb=server.dicomweb, mixed_study=mixed)


def run_cli(args: list[str]) -> int:
    return main(["segment", *args, "-m", str(MODEL), "--quiet"])


@pytest.fixture(scope="module")
def pushed(orthanc, tmp_path_factory):
    """One worklist run with --push: the phantom study, an unknown study, a mixed-size one."""
    work = tmp_path_factory.mktemp("pushed")
    study, _ = _source_uids()
    worklist = work / "studies.csv"
    worklist.write_text(f"StudyInstanceUID\n{study}\n{UNKNOWN_STUDY}\n{orthanc.mixed_study}\n")
    out = work / "out"
    rc = run_cli(["--dicomweb", orthanc.dicomweb, "--worklist", str(worklist), "-o", str(out),
                  "--push"])
    rows = json.loads((out / "summary.json").read_text())
    return {"rc": rc, "out": out, "rows": rows, "worklist": worklist}


def _seg_instances(orthanc, study):
    client = open_client(Server(orthanc.dicomweb))
    series = client.search_for_series(study, search_filters={"Modality": "SEG"})
    found = []
    for s in series:
        uid = s["0020000E"]["Value"][0]
        for inst in client.search_for_instances(study, uid):
            sop = inst["00080018"]["Value"][0]
            found.append(client.retrieve_instance(study, uid, sop))
    return found


def test_pushed_seg_is_found_references_its_source_and_matches_the_mask(orthanc, pushed):
    import highdicom as hd

    study, source_series = _source_uids()
    row = next(r for r in pushed["rows"] if r.get("study") == study)
    assert row["status"] == "ok" and row["series"] == source_series
    assert row["input"] == f"{orthanc.dicomweb}/studies/{study}/series/{source_series}"
    segs = _seg_instances(orthanc, study)
    assert [str(s.SOPInstanceUID) for s in segs] == [row["pushed"]]
    seg = hd.seg.Segmentation.from_dataset(segs[0])
    assert seg.StudyInstanceUID == study
    # references every source instance of the source series, in the source study
    ordered = series_datasets(SERIES)
    refs = seg.ReferencedSeriesSequence
    assert [r.SeriesInstanceUID for r in refs] == [source_series]
    assert {i.ReferencedSOPInstanceUID for i in refs[0].ReferencedInstanceSequence} == \
        {str(d.SOPInstanceUID) for d in ordered}
    # the patient module of the source study, so the SEG files into the same patient/study
    assert seg.PatientID == ordered[0].PatientID and seg.PatientName == ordered[0].PatientName
    local = pydicom.dcmread(pushed["out"] / f"{row['case']}_seg.dcm")
    assert local.SOPInstanceUID == seg.SOPInstanceUID and str(local.PatientName) == ""
    # voxel-identical to the NIfTI mask: frames (slice, row, column) = mask (col, row, slice)
    mask = read_label_map(pushed["out"] / f"{row['case']}.nii.gz")
    labels = json.loads((MODEL / "config.json").read_text())["labels"]
    remap = np.zeros(max(labels.values()) + 1, dtype=np.uint8)
    for item in seg.SegmentSequence:
        remap[labels[item.SegmentLabel]] = item.SegmentNumber
    expected = remap[np.transpose(mask.data, (2, 1, 0))]
    decoded = seg.get_pixels_by_source_instance(
        [str(d.SOPInstanceUID) for d in ordered], combine_segments=True, relabel=False)
    assert expected.any() and decoded.shape == expected.shape
    assert np.array_equal(decoded, expected)


def test_worklist_isolates_failing_studies_and_skips_finished_cases_on_rerun(orthanc, pushed):
    study, _source_series = _source_uids()
    rows = {r["study"]: r for r in pushed["rows"]}
    assert pushed["rc"] == 1 and len(pushed["rows"]) == 3
    assert rows[study]["status"] == "ok"
    unknown = rows[UNKNOWN_STUDY]
    assert unknown["status"] == "error" and "\n" not in unknown["message"]
    assert unknown["message"].startswith(orthanc.dicomweb)
    assert f"study {UNKNOWN_STUDY} not found" in unknown["message"]
    mixed = rows[orthanc.mixed_study]
    assert mixed["status"] == "error" and "\n" not in mixed["message"]
    assert mixed["message"].startswith(f"{orthanc.dicomweb}/studies/{orthanc.mixed_study}")
    assert "slice shape" in mixed["message"] and "differs" in mixed["message"]
    assert "medseg-pacs-" not in mixed["message"]  # no temporary folder shown
    # only the finished case left files (no half-written outputs of the failing ones)
    case = rows[study]["case"]
    left = {p.name for p in pushed["out"].iterdir() if p.name != "summary.json"}
    assert all(name.startswith(f"{case}.") or name.startswith(f"{case}_") for name in left)
    assert {f"{case}.nii.gz", f"{case}_seg.dcm", f"{case}_manifest.json"} <= left
    # rerun: the finished case is skipped (no second SEG pushed), the failures fail again
    rc = run_cli(["--dicomweb", orthanc.dicomweb, "--worklist", str(pushed["worklist"]), "-o",
                  str(pushed["out"]), "--push"])
    again = {r["study"]: r for r in json.loads((pushed["out"] / "summary.json").read_text())}
    assert rc == 1 and again[study]["status"] == "skipped"
    assert again[UNKNOWN_STUDY]["status"] == again[orthanc.mixed_study]["status"] == "error"
    assert len(_seg_instances(orthanc, study)) == 1


def test_browse_studies_and_series_without_patient_columns(orthanc, capsys):
    study, series = _source_uids()
    assert main(["pacs", "studies", orthanc.dicomweb]) == 0
    out = capsys.readouterr().out
    assert study in out and orthanc.mixed_study in out and "PHANTOM" not in out
    assert main(["pacs", "studies", orthanc.dicomweb, "--with-patient", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"PHANTOM^CT"} <= {r["PatientName"] for r in rows}
    assert main(["pacs", "series", orthanc.dicomweb, "--study", study, "--json"]) == 0
    ct = [r for r in json.loads(capsys.readouterr().out) if r["Modality"] == "CT"]
    assert [(r["SeriesInstanceUID"], r["NumberOfSeriesRelatedInstances"]) for r in ct] == \
        [(series, 60)]
    assert main(["pacs", "series", orthanc.dicomweb, "--study", UNKNOWN_STUDY]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and orthanc.dicomweb in err and "not found" in err


def test_a_response_past_the_size_limit_is_refused_and_nothing_kept(orthanc, tmp_path,
                                                                     monkeypatch):
    study, series = _source_uids()
    server = Server(orthanc.dicomweb)
    monkeypatch.setenv("MEDSEG_MAX_UNZIPPED_BYTES", "200000")  # the series is ~1.1 MB
    dest = tmp_path / "dl"
    with pytest.raises(ServerError, match="larger than the limit of 200000 bytes") as exc:
        download_series(open_client(server), server, study, series, dest)
    assert str(exc.value).startswith(orthanc.dicomweb) and not list(dest.iterdir())
    # through the CLI: one error row, no outputs
    out = tmp_path / "out"
    assert run_cli(["--dicomweb", orthanc.dicomweb, "--study", study, "-o", str(out)]) != 0
    rows = json.loads((out / "summary.json").read_text())
    assert rows[0]["status"] == "error" and "larger than the limit" in rows[0]["message"]
    assert sorted(p.name for p in out.iterdir()) == ["summary.json"]


def test_more_instances_than_the_member_limit_are_refused(orthanc, tmp_path, monkeypatch):
    study, series = _source_uids()
    server = Server(orthanc.dicomweb)
    monkeypatch.setenv("MEDSEG_MAX_ZIP_MEMBERS", "10")
    with pytest.raises(ServerError, match="60 instances, more than the limit 10"):
        download_series(open_client(server), server, study, series, tmp_path / "a",
                        expected=60)  # what QIDO said: refused before any download
    with pytest.raises(ServerError, match="more than 10 instances"):
        download_series(open_client(server), server, study, series, tmp_path / "b")
    assert not list((tmp_path / "b").iterdir())


def test_connection_refused_is_one_line_naming_the_server(capsys):
    url = f"http://127.0.0.1:{free_port()}/dicom-web"
    server = Server(url)
    with pytest.raises(ServerError, match="connection refused"):
        list_studies(open_client(server), server)
    assert main(["pacs", "studies", url]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"medseg: error: {url}: listing studies: connection refused")
    assert "\n" not in err


def _dicom_bytes(i: int) -> bytes:
    return sorted(SERIES.iterdir())[i].read_bytes()


def test_a_connection_dropped_mid_download_is_an_error_and_leaves_nothing(tmp_path):
    study, series = _source_uids()
    first, second = _dicom_bytes(0), _dicom_bytes(1)

    def handle(req):
        req.send_response(200)
        req.send_header("Content-Type", 'multipart/related; type="application/dicom"; '
                                        "boundary=BOUNDARY")
        req.send_header("Content-Length", str(10 * len(first)))  # promises more than it sends
        req.end_headers()
        part = b"--BOUNDARY\r\nContent-Type: application/dicom\r\n\r\n"
        req.wfile.write(part + first + b"\r\n" + part + second[: len(second) // 2])
        req.wfile.flush()
        req.close_connection = True

    with tiny_server(handle) as url:
        server = Server(url)
        dest = tmp_path / "dl"
        with pytest.raises(ServerError, match="connection was dropped") as exc:
            download_series(open_client(server), server, study, series, dest)
    assert str(exc.value).startswith(f"{url}: downloading series {series}")
    assert not list(dest.iterdir())  # the complete first instance was removed too


def test_bearer_token_is_sent_from_the_environment(monkeypatch, capsys):
    seen = []

    def handle(req):
        seen.append(req.headers.get("Authorization"))
        ok = req.headers.get("Authorization") == "Bearer s3cret-token"
        body = b"[]" if ok else b""
        req.send_response(200 if ok else 401)
        req.send_header("Content-Type", "application/dicom+json")
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)

    with tiny_server(handle) as url:
        monkeypatch.setenv(TOKEN_ENV, "s3cret-token")
        assert main(["pacs", "studies", url]) == 0
        assert seen == ["Bearer s3cret-token"]
        assert "(none)" in capsys.readouterr().out
        server = Server(url, credentials=Credentials(token="wrong"))
        with pytest.raises(ServerError, match=r"401 Unauthorized.*refused the bearer"):
            list_studies(open_client(server), server)
        monkeypatch.delenv(TOKEN_ENV)
        assert main(["pacs", "studies", url]) == 2
        assert "401 Unauthorized (no credentials were sent" in capsys.readouterr().err
    assert seen[-1] is None


def test_auth_files_must_be_private_and_urls_carry_no_credentials(tmp_path, capsys):
    path = tmp_path / "auth.json"
    path.write_text(json.dumps({"user": "alice", "password": "wonderland"}))
    os.chmod(path, 0o644)
    with pytest.raises(InputError, match="readable by every user; refused"):
        credentials_from_file(path)
    assert main(["pacs", "studies", "http://127.0.0.1:1/dicom-web",
                 "--auth-file", str(path)]) == 2
    assert "readable by every user" in capsys.readouterr().err
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    creds = credentials_from_file(path)
    assert (creds.kind, creds.user, creds.password) == ("basic", "alice", "wonderland")
    assert "wonderland" not in repr(creds)
    with pytest.raises(MedsegError, match="carries credentials"):
        Server("https://alice:wonderland@pacs.example.org/dicom-web")
    with pytest.raises(MedsegError, match="not an http"):
        Server("ftp://pacs.example.org")


def test_tls_is_verified_by_default_and_insecure_warns(tmp_path):
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("needs openssl to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)

    def handle(req):
        req.send_response(200)
        req.send_header("Content-Type", "application/dicom+json")
        req.send_header("Content-Length", "2")
        req.end_headers()
        req.wfile.write(b"[]")

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with tiny_server(handle, tls=context) as url:
        assert url.startswith("https://")
        server = Server(url)
        with pytest.raises(ServerError, match="TLS certificate verification failed"):
            list_studies(open_client(server), server)
        server = Server(url, ca_bundle=str(cert))
        assert list_studies(open_client(server), server) == []
        server = Server(url, insecure=True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            client = open_client(server)
            assert list_studies(client, server) == []
        assert any("verification is OFF" in str(w.message) for w in caught)


def test_uids_and_worklists_are_validated(tmp_path, orthanc):
    with pytest.raises(MedsegError, match="not a DICOM UID"):
        check_uid("../../instances")
    server = Server(orthanc.dicomweb)
    with pytest.raises(MedsegError, match="not a DICOM UID"):
        list_series(open_client(server), server, "1.2/../3")
    csv = tmp_path / "w.csv"
    csv.write_text("1.2.3\n1.2.3\n1.2.4,\n")
    assert [r.study for r in read_worklist(csv)] == ["1.2.3", "1.2.4"]
    csv.write_text("study,series\n1.2.3,1.2.3.9\n1.2.x\n")
    with pytest.raises(InputError, match=r"line 3: study '1\.2\.x' is not a DICOM UID"):
        read_worklist(csv)


def test_the_pushed_copy_keeps_only_the_same_study_attributes(tmp_path):
    from medseg.pacs.store import SAME_STUDY, same_study_seg

    source = tmp_path / "source"
    source.mkdir()
    for i, ds in enumerate(series_datasets(SERIES)[:2]):
        ds.IssuerOfPatientID = "HOSPITAL-X"
        ds.save_as(source / f"{i}.dcm")
    seg = series_datasets(SERIES)[0]  # stands for a SEG of that study: same checks apply
    seg.PatientName, seg.PatientID = "", ""
    extra = {"PatientComments": "private note", "PatientAge": "042Y",
             "OtherPatientNames": "ALIAS^X", "StudyDescription": "CT for J. Doe",
             "ClinicalTrialSubjectID": "S-7"}
    for keyword, value in extra.items():
        setattr(seg, keyword, value)
    seg.save_as(tmp_path / "seg.dcm")
    pushed = same_study_seg(tmp_path / "seg.dcm", source)
    first = series_datasets(SERIES)[0]
    for keyword in SAME_STUDY:
        assert pushed.get(keyword, "") == first.get(keyword, ""), keyword
    assert not set(extra) & set(pushed.dir()) and "IssuerOfPatientID" not in pushed
    assert pushed.SOPInstanceUID == seg.SOPInstanceUID and pushed.Rows == seg.Rows
    other = tmp_path / "other"
    other.mkdir()
    _ = _mixed_size_series(other / "x")
    with pytest.raises(ServerError, match="another study"):
        same_study_seg(tmp_path / "seg.dcm", other / "x")


@pytest.mark.slow  # a second segmentation (~20 s on a busy CPU)
def test_a_refused_push_leaves_the_case_unfinished_and_nothing_stored(orthanc, tmp_path):
    """A proxy in front of Orthanc that forwards reads and answers every STOW-RS with 500."""
    import urllib.error
    import urllib.request

    study, _series = _source_uids()
    before = len(_seg_instances(orthanc, study))

    def handle(req):
        if req.command == "POST":
            req.rfile.read(int(req.headers.get("Content-Length", 0)))
            req.send_response(500)
            req.send_header("Content-Length", "0")
            req.end_headers()
            return
        upstream = urllib.request.Request(orthanc.dicomweb + req.path.removeprefix("/dw"),
                                          headers={"Accept": req.headers.get("Accept", "*/*")})
        try:
            with urllib.request.urlopen(upstream, timeout=30) as r:
                status, body, ctype = r.status, r.read(), r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            status, body, ctype = exc.code, b"", "text/plain"
        req.send_response(status)
        req.send_header("Content-Type", ctype)
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)

    out = tmp_path / "out"
    with tiny_server(handle) as url:
        rc = run_cli(["--dicomweb", f"{url}/dw", "--study", study, "-o", str(out), "--push"])
    row = json.loads((out / "summary.json").read_text())[0]
    assert rc != 0 and row["status"] == "error" and "pushed" not in row
    assert row["message"].startswith(f"push failed: {url}/dw: storing the SEG into study")
    assert "HTTP 500" in row["message"]
    # not left looking finished: no mask, no SEG, so the next run redoes and pushes the case
    case = row["case"]
    assert not (out / f"{case}.nii.gz").exists() and not (out / f"{case}_seg.dcm").exists()
    assert len(_seg_instances(orthanc, study)) == before


def test_pacs_options_without_a_server_are_refused(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["segment", str(SERIES), "-o", str(out), "-m", str(MODEL), "--push",
                 "--study", "1.2.3"]) == 2
    assert "--study, --push need(s) --dicomweb URL" in capsys.readouterr().err
    assert not out.exists()
    assert main(["segment", "-o", str(out), "-m", str(MODEL), "--dicomweb",
                 "http://127.0.0.1:1/dicom-web"]) == 2
    assert "needs --study UID (repeatable) or --worklist CSV" in capsys.readouterr().err


def test_cases_are_named_readably_and_keep_their_uids(orthanc, pushed):
    """Issue 25: a PACS case was named by its 64-character SeriesInstanceUID; now by date,
    modality, series number and a short hash of the UID, which summary.json and the case's
    manifest keep."""
    import hashlib

    study, series = _source_uids()
    row = next(r for r in pushed["rows"] if r.get("study") == study)
    digest = hashlib.sha256(series.encode()).hexdigest()[:8]
    assert row["case"] == f"20240101_CT1_{digest}" != series  # phantom: 2024-01-01, CT #1
    assert row["series"] == series and row["study"] == study
    assert not [p for p in pushed["out"].iterdir() if series in p.name]
    manifest = json.loads((pushed["out"] / f"{row['case']}_manifest.json").read_text())
    assert manifest["result"]["source"] == {"dicomweb": orthanc.dicomweb, "study": study,
                                            "series": series}
    # unique: the same date, modality and number with another UID is another name; only
    # letters, digits and '-' of each part are kept
    other = series_case_name(series + ".1", "20240101", "CT", "1")
    assert other != row["case"] and other.startswith("20240101_CT1_")
    assert series_case_name("1.2.3", "2024/01/01", "C T", "x") == \
        f"20240101_CT_{hashlib.sha256(b'1.2.3').hexdigest()[:8]}"
    assert series_case_name("1.2.3") == hashlib.sha256(b"1.2.3").hexdigest()[:8]
