"""The report pages as a manager meets them: a real headless Chromium against the sidecar, and raw HTTP
for what a browser would never send (no cookie, a forged one)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests

from cvat_ext.active_learning.round import RoundParams, run_round
from cvat_ext.sidecar.state import StateStore
from cvat_ext.workforce.accuracy import accuracies_of, summarise
from tests.active_learning.detector_server import detector_function, url_of
from tests.active_learning.pool import pool_images
from tests.reports.browser import chromium, console_errors
from tests.reports.conftest import PUBLIC_URL, Served
from tests.sidecar.test_e2e_standin import make_client

#: set to a folder to keep the screenshots (the docs' pictures are made this way)
SHOTS = os.environ.get("CVAT_EXT_SCREENSHOTS")


def _shot(driver, tmp_path: Path, name: str) -> Path:  # type: ignore[no-untyped-def]
    path = Path(SHOTS or tmp_path) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    return path


def _sign_in(driver, base: str, username: str, password: str) -> None:  # type: ignore[no-untyped-def]
    driver.get(f"{base}/login")
    driver.find_element("id", "username").send_keys(username)
    driver.find_element("id", "password").send_keys(password)
    driver.find_element("css selector", "form[action='/login'] button").click()
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 10).until(lambda d: d.current_url.endswith("/reports"))  # the cookie is set


def _cells(driver, css: str = "main table tbody tr") -> list[list[str]]:  # type: ignore[no-untyped-def]
    return [[td.text for td in tr.find_elements("tag name", "td")] for tr in driver.find_elements("css selector", css)]


def test_a_supervisor_reads_the_numbers_the_sidecar_stored(served: Served, tmp_path: Path) -> None:
    store: StateStore = served.service.store
    (task_id,) = store.scored_tasks()
    scores = store.scores_of_task(task_id)
    with chromium() as driver:
        _sign_in(driver, served.url, "rev1", served.world.password)
        assert driver.current_url.endswith("/reports")
        driver.find_element("link text", "qa-eval").click()
        overview = _cells(driver)[0]
        agreements = [s.agreement for s in scores if s.kind == "consensus" and s.agreement is not None]
        (quality,) = [s.agreement for s in scores if s.kind == "quality"]
        assert overview[:7] == [f"task {task_id}", str(len(scores)), f"{min(agreements):.3f}", f"{quality:.3f}",
                                str(sum(s.rule_errors for s in scores if s.kind != "quality")),
                                str(store.open_issues_by_task()[task_id]),
                                str(sum(s.decision.startswith("review") for s in scores))]
        overview_png = _shot(driver, tmp_path, "reports-overview.png")
        driver.find_element("link text", f"task {task_id}").click()
        rows = _cells(driver, "main table:first-of-type tbody tr")
        assert [r[0] for r in rows] == [f"job {s.job_id}" for s in scores]
        # the task's annotators by CVAT username: estimate vs truth beside the labelled F1 vs consensus
        people = summarise([a for s in scores if s.kind == "consensus" for a in accuracies_of(s.detail)])
        assert [p.name for p in people] == ["ann1", "ann2", "ann3"]
        assert _cells(driver, "main table:last-of-type tbody tr") == [
            [p.name, "2", p.f1_text(), p.mean_iou_text(), str(p.gt_objects), f"{p.vs_consensus_f1:.3f}"]
            for p in people]
        headers = [th.text for th in driver.find_elements("css selector", "main table:last-of-type th")]
        assert headers[2] == "estimated F1 (±)" and headers[5] == "F1 vs consensus"
        assert [r[2] for r in rows] == [f"{s.agreement:.3f}" if s.agreement is not None else "—" for s in scores]
        bars = driver.find_elements("css selector", "svg rect")
        assert len(bars) == sum(1 for s in scores if s.kind == "consensus" and s.agreement is not None) > 0
        link = driver.find_element("link text", f"Open task {task_id} in CVAT").get_attribute("href")
        assert link == f"{served.standin.url}/tasks/{task_id}"
        _shot(driver, tmp_path, "reports-task.png")
        assert console_errors(driver) == []
    assert overview_png.stat().st_size > 5000


def test_active_learning_rounds_page_says_why(served: Served) -> None:
    w = served.world
    with make_client(served.standin, w) as client, detector_function() as server:
        pool = client.create_task_from_images("pool", project_id=w.project_id,
                                              images=pool_images([[0.5, 0.45, 0.9], [0.3, 0.55, 0.99]])).id
        from cvat_ext.active_learning.predictors import FunctionPredictor

        rec = run_round(client, served.service.store, RoundParams(project_id=w.project_id, pool_task_id=pool,
                                                                  batch=3),
                        FunctionPredictor(url_of(server), label_ids={"car": w.label_ids["car"]}),
                        now_iso=lambda: "2026-12-07T10:00:00+00:00")
    with chromium() as driver:
        _sign_in(driver, served.url, "qabot", served.world.password)
        driver.get(f"{served.url}/reports/org/qa-eval")
        driver.find_element("link text", f"project {w.project_id}").click()
        rows = _cells(driver)
        assert rows == [[str(p.rank), str(p.frame), p.name, f"{p.score:.3f}", p.why] for p in rec.picks]
        heading = driver.find_element("css selector", "main h2").text
        assert heading == f"Round 1 · pool task {pool} (done)"
        _shot(driver, Path(os.environ.get("TMPDIR", "/tmp")), "reports-rounds.png")
        assert console_errors(driver) == []


@pytest.mark.parametrize("cookie", [None, "cvat_ext_session=forged", "cvat_ext_session="])
def test_without_a_valid_session_no_data(served: Served, cookie: str | None) -> None:
    (task_id,) = served.service.store.scored_tasks()
    headers = {"Cookie": cookie} if cookie else {}
    for path in ("/reports", "/reports/org/qa-eval", f"/reports/org/qa-eval/task/{task_id}"):
        resp = requests.get(served.url + path, headers=headers, timeout=10, allow_redirects=False)
        assert resp.status_code == 401
        assert f"task {task_id}" not in resp.text and "job " not in resp.text


def test_workers_and_strangers_are_refused(served: Served) -> None:
    for username, password, status in (("ann3", served.world.password, 403), ("rev1", "wrong", 401),
                                       ("annotator1", served.world.password, 403)):
        resp = requests.post(f"{served.url}/login", data={"username": username, "password": password}, timeout=10,
                             allow_redirects=False)
        assert resp.status_code == status
        assert "Set-Cookie" not in resp.headers


def test_sessions_expire_and_other_organizations_are_forbidden(served: Served) -> None:
    s = requests.Session()
    resp = s.post(f"{served.url}/login", data={"token": served.world.bot_token}, timeout=10, allow_redirects=False)
    assert resp.status_code == 303 and "HttpOnly" in resp.headers["Set-Cookie"]
    assert "SameSite=Strict" in resp.headers["Set-Cookie"]
    assert s.get(f"{served.url}/reports/org/qa-eval", timeout=10).status_code == 200
    assert s.get(f"{served.url}/reports/org/other-org", timeout=10).status_code == 403
    assert s.get(f"{served.url}/reports/org/qa-eval/nothing/1", timeout=10).status_code == 404
    served.clock.t += 601  # reports.session_ttl_s is 600 in this fixture
    assert s.get(f"{served.url}/reports/org/qa-eval", timeout=10).status_code == 401
    assert requests.post(f"{served.url}/login", data="x" * 10_000, timeout=10).status_code == 413


def test_the_task_guide_links_to_the_task_page(served: Served) -> None:
    (task_id,) = served.service.store.scored_tasks()
    with make_client(served.standin, served.world) as client:
        guide = client.get_guide(client.get_task(task_id).guide_id)  # type: ignore[arg-type]
    assert f"]({PUBLIC_URL}/reports/org/qa-eval/task/{task_id})" in guide.markdown


def test_a_manager_sees_who_is_below_the_bar_and_why(cvat_standin, cvat_org_world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import time as _time

    from cvat_ext.workforce.scorecards import scorecards
    from tests.sidecar.test_e2e_standin import Clock, make_service, make_settings
    from tests.workforce.scenario import seed_gold_task

    task = seed_gold_task(cvat_standin, cvat_org_world)
    cfg = make_settings(cvat_standin, cvat_org_world, f"sqlite:///{tmp_path}/state.db", workforce={
        "qualification": {"enabled": True, "bar": 0.9, "min_gold_frames": 4}})
    with make_service(cvat_standin, cvat_org_world, cfg, Clock()) as svc:
        svc.run_once()
        cards = {c.username: c for c in scorecards(svc.store, now=_time.time())}
        with svc.http_server() as server, chromium() as driver:
            _sign_in(driver, server.url, "rev1", cvat_org_world.password)
            driver.get(f"{server.url}/reports/org/qa-eval")
            tables = driver.find_elements("css selector", "main table")
            annotators = [[td.text for td in tr.find_elements("tag name", "td")]
                          for tr in tables[1].find_elements("css selector", "tbody tr")]
            assert annotators[0][:2] == ["ann3", "not qualified"]  # below the bar first
            by_name = {row[0]: row for row in annotators}
            for name, card in cards.items():
                assert by_name[name][2] == str(card.jobs) and by_name[name][3] == str(card.objects)
                assert by_name[name][4] == ("—" if card.gold_accuracy is None else f"{card.gold_accuracy:.3f}")
            _shot(driver, tmp_path, "reports-overview-annotators.png")
            driver.find_element("link text", "ann3").click()
            assert driver.find_element("css selector", "main h1").text == "Annotator ann3"
            summary = dict(_cells(driver, "main table:first-of-type tbody tr"))
            assert summary["qualification"] == "not qualified"
            ann3 = cards["ann3"]
            assert summary["accuracy on gold"] == f"{ann3.gold_accuracy:.3f} over {ann3.gold_frames} gold frames"
            points = driver.find_elements("css selector", "svg circle")
            assert len(points) == len([r for r in svc.store.work(user_id=cvat_org_world.user_ids["ann3"],
                                                                  completed=True) if r.facts.get("gold")])
            # ann3 drew 1 of 3 cars right on every gold frame of job B (11, 13, 15, 17): 0.4 on each
            rows = _cells(driver, "main table:last-of-type tbody tr")
            assert [r[0] for r in rows][:4] == [f"job {task.sloppy_job}, frame {f}" for f in (11, 13, 15, 17)]
            assert {r[2] for r in rows[:4]} == {"0.400"}
            link = driver.find_element("link text", f"job {task.sloppy_job}, frame 11").get_attribute("href")
            assert link == f"{cvat_standin.url}/tasks/{task.task_id}/jobs/{task.sloppy_job}?frame=11"
            _shot(driver, tmp_path, "reports-annotator.png")
            assert console_errors(driver) == []


def test_annotators_show_their_estimated_f1_beside_gold_accuracy(served: Served) -> None:
    """The overview's annotators (scorecards, by CVAT username) and an annotator's page show the
    engine's estimate vs truth with its standard error and GT objects, labelled apart from the F1 vs
    consensus. The stored consensus scores are given estimates, as an engine that makes them stores them."""
    import dataclasses

    from cvat_ext.reports.pages import estimated_text
    from cvat_ext.workforce.scorecards import scorecards

    store: StateStore = served.service.store
    (task_id,) = store.scored_tasks()
    rng = {"ann1": (0.95, 0.01, 6), "ann2": (0.9, 0.02, 0), "ann3": (0.4, 0.05, 3)}
    for score in store.scores_of_task(task_id):
        if score.kind != "consensus":
            continue
        people = [dataclasses.replace(a, truth={"f1": rng[a.name][0]}, truth_se={"f1": rng[a.name][1]},
                                      gt_objects=rng[a.name][2]) for a in accuracies_of(score.detail)]
        store.put_score(dataclasses.replace(score, detail={**score.detail,
                                                           "annotators": [p.as_dict() for p in people]}))
    cards = {c.username: c for c in scorecards(store, now=served.clock())}
    assert set(cards) == {"ann1", "ann2", "ann3"}
    assert cards["ann3"].estimated_f1 == pytest.approx(0.4) and cards["ann3"].estimated_gt_objects == 6
    with chromium() as driver:
        _sign_in(driver, served.url, "rev1", served.world.password)
        driver.get(f"{served.url}/reports/org/qa-eval")
        tables = driver.find_elements("css selector", "main table")
        headers = [th.text for th in tables[1].find_elements("tag name", "th")]
        assert headers[4:8] == ["gold accuracy", "estimated F1 (±)", "gold frames", "F1 vs consensus"]
        rows = {r[0]: r for r in ([td.text for td in tr.find_elements("tag name", "td")]
                                  for tr in tables[1].find_elements("css selector", "tbody tr"))}
        for name, card in cards.items():
            assert rows[name][5] == estimated_text(card)
            assert rows[name][7] == f"{card.vs_consensus:.3f}"
        # ann3's two replicas: 0.4 (se 0.05) twice -> 0.400, se of the mean 0.035, over 6 GT objects
        assert rows["ann3"][5] == "0.400 ± 0.035 (6 GT objects)"
        driver.find_element("link text", "ann3").click()
        summary = dict(_cells(driver, "main table:first-of-type tbody tr"))
        assert summary["estimated F1 vs truth (± one standard error)"] == "0.400 ± 0.035 (6 GT objects)"
        assert summary["agreement vs consensus (not accuracy)"] == f"{cards['ann3'].vs_consensus:.3f}"
        assert console_errors(driver) == []
