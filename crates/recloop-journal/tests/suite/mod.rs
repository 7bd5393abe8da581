//! The backend-independent test suite: every function runs against SQLite and PostgreSQL.

use crate::common::TestDb;
use recloop_core::{Decision, Direction, LessonStatus, MetricValues};
use recloop_journal::fixtures::{self, one_of_each};
use recloop_journal::{Event, EventFilter, JournalError, NewEvent, SCHEMA_VERSION, SearchFilter};

fn append_all(
    j: &recloop_journal::Journal,
    run: &str,
    events: Vec<Event>,
) -> Vec<recloop_journal::EventId> {
    let mut ids = Vec::new();
    let mut parent = None;
    for (i, e) in events.into_iter().enumerate() {
        let id = j
            .append(NewEvent::new(run, i as u32 / 5, e).parent(parent))
            .unwrap();
        parent = Some(id.id);
        ids.push(id);
    }
    ids
}

pub fn append_and_read_back(db: &TestDb) {
    let j = db.open();
    let events = one_of_each("r1");
    let ids = append_all(&j, "r1", events.clone());
    assert_eq!(
        ids.iter().map(|i| i.seq).collect::<Vec<_>>(),
        (1..=events.len() as u64).collect::<Vec<_>>()
    );
    let back = j.events(&EventFilter::default()).unwrap();
    assert_eq!(back.len(), events.len());
    for (i, (rec, e)) in back.iter().zip(&events).enumerate() {
        assert_eq!(&rec.event, e);
        assert_eq!(rec.id, ids[i].id);
        assert_eq!(rec.parent, if i == 0 { None } else { Some(ids[i - 1].id) });
        assert_eq!(rec.run_id, "r1");
        assert_eq!(rec.schema_version, recloop_journal::EVENT_SCHEMA_VERSION);
    }
    let report = j.verify().unwrap();
    assert_eq!(report.events, events.len() as u64);
    assert_eq!(report.runs, 1);
    // Filters.
    let verdicts = j
        .events(&EventFilter {
            types: vec!["verdict".into(), "gate_failed".into()],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(verdicts.len(), 2);
    let newest = j
        .events(&EventFilter {
            newest_first: true,
            limit: Some(1),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(newest[0].seq, events.len() as u64);
    assert_eq!(
        j.event(3).unwrap().unwrap().event.type_name(),
        "proposal_made"
    );
    assert_eq!(j.event_by_id(ids[4].id).unwrap().unwrap().seq, 5);
    assert!(j.event(999).unwrap().is_none());
    // Reopen: same content.
    drop(j);
    let j = db.open();
    assert_eq!(j.event_count().unwrap(), events.len() as u64);
}

pub fn idempotency_keys_do_not_duplicate(db: &TestDb) {
    let j = db.open();
    let e = || {
        NewEvent::new(
            "r1",
            1,
            Event::ProposalAdmitted {
                proposal_id: "p-1".into(),
            },
        )
        .key("r1/1/admit/p-1")
    };
    let a = j.append(e()).unwrap();
    let b = j.append(e()).unwrap();
    assert_eq!(a, b);
    assert_eq!(j.event_count().unwrap(), 1);
    // Same key twice within one batch, plus a new event: two events total.
    let ids = j
        .append_batch(vec![
            e(),
            NewEvent::new(
                "r1",
                1,
                Event::ProposalAdmitted {
                    proposal_id: "p-2".into(),
                },
            )
            .key("r1/1/admit/p-2"),
            NewEvent::new(
                "r1",
                1,
                Event::ProposalAdmitted {
                    proposal_id: "p-2".into(),
                },
            )
            .key("r1/1/admit/p-2"),
        ])
        .unwrap();
    assert_eq!(ids[0], a);
    assert_eq!(ids[1], ids[2]);
    assert_eq!(j.event_count().unwrap(), 2);
    // A key reused by another event type is a bug in the caller: clear error, nothing written.
    let err = j
        .append(
            NewEvent::new(
                "r1",
                1,
                Event::ProposalRejected {
                    proposal_id: "p-1".into(),
                    reason: "x".into(),
                },
            )
            .key("r1/1/admit/p-1"),
        )
        .unwrap_err();
    assert!(
        matches!(err, JournalError::KeyConflict { seq: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("proposal_admitted"), "{err}");
    assert_eq!(j.event_count().unwrap(), 2);
    // Resumption queries.
    assert_eq!(j.find_by_key("r1/1/admit/p-2").unwrap().unwrap().seq, 2);
    assert!(j.find_by_key("nope").unwrap().is_none());
    assert_eq!(j.last_completed_step("r1").unwrap().unwrap().seq, 2);
    assert!(j.last_completed_step("r2").unwrap().is_none());
}

pub fn batches_are_atomic(db: &TestDb) {
    let j = db.open();
    j.append(NewEvent::new(
        "r1",
        0,
        Event::RunResumed {
            after_seq: 0,
            reason: String::new(),
        },
    ))
    .unwrap();
    let mut metrics = MetricValues::new();
    metrics.insert("ndcg@10".into(), f64::NAN);
    let err = j
        .append_batch(vec![
            NewEvent::new(
                "r1",
                0,
                Event::ProposalAdmitted {
                    proposal_id: "ok".into(),
                },
            ),
            NewEvent::new(
                "r1",
                0,
                Event::OfflineResult {
                    proposal_id: "p".into(),
                    candidate_id: "c".into(),
                    split: "validation".into(),
                    metrics,
                },
            ),
        ])
        .unwrap_err();
    assert!(
        matches!(&err, JournalError::InvalidEvent { event_type, reason } if event_type == "offline_result" && reason.contains("NaN")),
        "{err}"
    );
    assert_eq!(j.event_count().unwrap(), 1, "a failed batch writes nothing");
    assert!(j.experiment("ok").unwrap().is_none(), "nor its view rows");
    // Unknown parent and empty run id.
    let err = j
        .append(
            NewEvent::new(
                "r1",
                0,
                Event::ProposalAdmitted {
                    proposal_id: "x".into(),
                },
            )
            .parent(uuid::Uuid::nil()),
        )
        .unwrap_err();
    assert!(err.to_string().contains("causal parent"), "{err}");
    let err = j
        .append(NewEvent::new(
            " ",
            0,
            Event::ProposalAdmitted {
                proposal_id: "x".into(),
            },
        ))
        .unwrap_err();
    assert!(err.to_string().contains("run_id is empty"), "{err}");
    let next = j
        .append(NewEvent::new(
            "r1",
            0,
            Event::ProposalAdmitted {
                proposal_id: "y".into(),
            },
        ))
        .unwrap();
    assert_eq!(next.seq, 2, "no gap after failed appends");
    j.verify().unwrap();
}

pub fn views_follow_the_events(db: &TestDb) {
    let j = db.open();
    append_all(&j, "r1", one_of_each("r1"));
    let e = j.experiment("p-1").unwrap().unwrap();
    assert_eq!(e.status, "merged");
    assert_eq!(e.decision, Some(Decision::Keep));
    assert_eq!(e.title, "Tune EASE regularisation");
    assert_eq!(e.direction, Some(Direction::Increase));
    assert_eq!((e.gates_passed, e.gates_failed), (1, 1));
    assert_eq!(e.candidate_id.as_deref(), Some("c-p-1"));
    assert_eq!(e.offline_metrics.get("ndcg@10"), Some(&0.37));
    assert_eq!(e.holdout_passed, Some(true));
    assert_eq!(e.experiment_id.as_deref(), Some("e-1"));
    assert_eq!(e.max_traffic, Some(0.05));
    assert_eq!((e.health_holds, e.attention), (1, 1));
    assert_eq!(e.merged_commit.as_deref(), Some("c1"));
    assert_eq!(e.proposal.as_ref().unwrap().lever, "model.ease.lambda");
    // Lineage: proposal → candidate → verdict, in order.
    let (p, c, v) = (
        e.proposal_seq.unwrap(),
        e.candidate_seq.unwrap(),
        e.verdict_seq.unwrap(),
    );
    assert!(p < c && c < v, "{p} {c} {v}");
    let lineage = j.lineage("p-1").unwrap();
    assert_eq!(lineage.first().unwrap().event.type_name(), "proposal_made");
    assert!(lineage.iter().any(|r| r.event.type_name() == "verdict"));
    assert_eq!(lineage.last().unwrap().event.type_name(), "trajectory_step");
    let rejected = j.experiment("p-0").unwrap().unwrap();
    assert!(rejected.vetoed);
    assert_eq!(rejected.status, "vetoed");

    let board = j.leaderboard().unwrap();
    assert_eq!(
        board
            .iter()
            .map(|v| (v.version, v.commit.as_str()))
            .collect::<Vec<_>>(),
        vec![(1, "c0"), (2, "c1")]
    );
    assert_eq!(board[1].proposal_id.as_deref(), Some("p-1"));
    assert_eq!(board[0].metrics.get("ndcg@10"), Some(&0.35));

    let lessons = j.lessons().unwrap();
    assert_eq!(lessons.len(), 1);
    assert_eq!(lessons[0].lesson.status, LessonStatus::Falsified);
    assert_eq!(lessons[0].lesson.supporting_runs, vec!["r1", "r-other"]);
    assert_eq!(
        lessons[0].reason.as_deref(),
        Some("falsification check refuted it")
    );
    // Falsified is permanent, even if a later event tries to promote it.
    j.append(NewEvent::new(
        "r1",
        9,
        Event::LessonPromoted {
            lesson: fixtures::lesson("l-1", "again", LessonStatus::Confirmed, &["a", "b"]),
        },
    ))
    .unwrap();
    assert_eq!(
        j.lessons().unwrap()[0].lesson.status,
        LessonStatus::Falsified
    );

    let assets = j.assets().unwrap();
    assert_eq!(assets.len(), 1);
    assert_eq!(assets[0].asset.index.lever, "rerank.diversity");
    let traj = j.trajectories(Some("r1")).unwrap();
    assert_eq!(traj.len(), 1);
    assert_eq!(traj[0].step.duration_ms, 1500);
    assert_eq!(traj[0].proposal_id.as_deref(), Some("p-1"));
    let harness = j.harness_versions(Some("brainstorm")).unwrap();
    assert_eq!(harness.len(), 1);
    assert_eq!(harness[0].parent_version, Some(1));
    assert!(harness[0].files.contains_key("instructions.md"));
    let budget = j.budget().unwrap();
    assert_eq!(budget.len(), 1);
    assert_eq!((budget[0].calls, budget[0].tokens_in), (1, 1200));
    let runs = j.runs().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].seed, Some(7));
    assert_eq!(runs[0].resumes, 1);
    assert_eq!(runs[0].outcome.as_deref(), Some("completed"));
}

pub fn rebuild_reproduces_views(db: &TestDb) {
    let j = db.open();
    j.append_batch(fixtures::loop_stream("r1", 3, 1500))
        .unwrap();
    j.append_batch(fixtures::loop_stream("r2", 4, 500)).unwrap();
    append_all(&j, "r3", one_of_each("r3"));
    let before = j.dump_views().unwrap();
    assert!(before.contains("## v_experiments"), "{}", &before[..200]);
    let replayed = j.rebuild_views().unwrap();
    assert_eq!(replayed, j.event_count().unwrap());
    let after = j.dump_views().unwrap();
    assert_eq!(before, after, "rebuilt views differ from incremental views");
    // Non-trivial content.
    assert!(j.experiments().unwrap().len() > 50);
    assert!(j.leaderboard().unwrap().len() > 3);
    j.verify().unwrap();
}

pub fn search_filters_by_index_fields(db: &TestDb) {
    let j = db.open();
    j.append_batch(fixtures::loop_stream("r1", 11, 3000))
        .unwrap();
    append_all(&j, "r2", one_of_each("r2"));
    // A word that only exists in the hand-made failure asset.
    let hits = j
        .search("penalised twice", &SearchFilter::default())
        .unwrap();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].doc_id, "asset:a-1");
    assert_eq!(hits[0].kind, "failure");
    assert_eq!(hits[0].lever.as_deref(), Some("rerank.diversity"));
    // Stemming: "regularise" documents match "regularisation"? Use plural/singular instead.
    let hits = j
        .search(
            "diversity",
            &SearchFilter {
                stage: Some("rerank".into()),
                kinds: vec!["hypothesis".into()],
                limit: Some(50),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(!hits.is_empty());
    for h in &hits {
        assert_eq!(h.stage.as_deref(), Some("rerank"));
        assert_eq!(h.kind, "hypothesis");
        assert!(
            format!("{} {}", h.title, h.body)
                .to_lowercase()
                .contains("diversity"),
            "{h:?}"
        );
    }
    // Lever and segment filters on failure assets.
    let hits = j
        .search(
            "root cause",
            &SearchFilter {
                kinds: vec!["failure".into()],
                lever: Some("blend.weights".into()),
                segment: Some("sparse".into()),
                limit: Some(100),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(!hits.is_empty());
    assert!(
        hits.iter()
            .all(|h| h.lever.as_deref() == Some("blend.weights")
                && h.segment.as_deref() == Some("sparse"))
    );
    // Lessons by status; the falsified lesson is findable only under its status.
    let falsified = j
        .search(
            "EASE lambda",
            &SearchFilter {
                kinds: vec!["lesson".into()],
                status: Some("falsified".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(falsified.len(), 1);
    assert_eq!(falsified[0].doc_id, "lesson:l-1");
    // Diagnoses from harness versions.
    let diag = j
        .search(
            "avoid set",
            &SearchFilter {
                kinds: vec!["diagnosis".into()],
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(diag.len(), 1);
    // Query syntax is not interpreted: quotes, operators and stars are just separators.
    j.search("\"unbalanced AND (OR * NEAR", &SearchFilter::default())
        .unwrap();
    // No words: newest documents matching the filter.
    let newest = j
        .search(
            "",
            &SearchFilter {
                kinds: vec!["lesson".into()],
                limit: Some(3),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(newest.len(), 3);
    assert!(newest[0].seq >= newest[1].seq);
}

pub fn similar_and_best_first(db: &TestDb) {
    let j = db.open();
    let mut base = MetricValues::new();
    base.insert("ndcg@10".into(), 0.30);
    let mut evs = vec![Event::RunStarted {
        seed: None,
        production_commit: "c0".into(),
        baseline: base,
        config: serde_json::Value::Null,
    }];
    let specs = [
        (
            "p-a",
            "Raise EASE lambda",
            "Stronger regularisation helps sparse users",
            "candidates",
            "model.ease.lambda",
            0.36,
        ),
        (
            "p-b",
            "Lower EASE lambda",
            "Weaker regularisation overfits popular items",
            "candidates",
            "model.ease.lambda",
            0.31,
        ),
        (
            "p-c",
            "Diversity rerank",
            "Maximal marginal relevance raises coverage",
            "rerank",
            "rerank.diversity",
            0.33,
        ),
        (
            "p-d",
            "Recency boost script",
            "Fresh items matter for returning users",
            "script",
            "script.recency_boost",
            0.29,
        ),
    ];
    for (id, title, hyp, stage, lever, ndcg) in specs {
        evs.push(Event::ProposalMade {
            proposal: fixtures::proposal(id, title, hyp, stage, lever),
        });
        evs.push(Event::CandidateReady {
            candidate: fixtures::candidate(id, "c0", ndcg),
        });
    }
    evs.push(Event::Verdict {
        proposal_id: "p-a".into(),
        candidate_id: "c-p-a".into(),
        experiment_id: None,
        verdict: fixtures::verdict(Decision::Keep, 0.06),
    });
    append_all(&j, "r1", evs);
    let new = fixtures::proposal(
        "p-new",
        "Tune EASE lambda for sparse users",
        "Regularisation strength matters for sparse users",
        "candidates",
        "model.ease.lambda",
    );
    let sim = j.similar_experiments(&new, 3).unwrap();
    let ids: Vec<&str> = sim
        .iter()
        .map(|s| s.experiment.proposal_id.as_str())
        .collect();
    assert_eq!(&ids[..2], &["p-a", "p-b"], "{sim:?}");
    assert!(sim[0].similarity > sim[1].similarity);
    assert!(sim.iter().all(|s| s.experiment.proposal_id != "p-new"));

    let best = j.best_first("ndcg@10", Direction::Increase, 10).unwrap();
    let order: Vec<&str> = best.iter().map(|b| b.proposal_id.as_str()).collect();
    assert_eq!(order, vec!["p-a", "p-c", "p-b", "p-d"]);
    assert!((best[0].delta.unwrap() - 0.06).abs() < 1e-9);
    assert!(
        best[0]
            .line
            .starts_with("p-a ndcg@10=0.3600 (+0.0600) KEEP [model.ease.lambda]"),
        "{}",
        best[0].line
    );
    let worst = j.best_first("ndcg@10", Direction::Decrease, 1).unwrap();
    assert_eq!(worst[0].proposal_id, "p-d");
    assert!(
        j.best_first("missing", Direction::Increase, 5)
            .unwrap()
            .is_empty()
    );
}

pub fn export_import_reproduces_views(db: &TestDb, target: &TestDb) {
    let j = db.open();
    let art = j
        .put_artifact(b"--- a/pipeline.toml\n+++ b/pipeline.toml\n")
        .unwrap();
    j.append_batch(fixtures::loop_stream("r1", 5, 800)).unwrap();
    let mut evs = fixtures::loop_stream("r2", 6, 200);
    evs[5] = evs[5].clone().artifact(art.clone()).key("r2/with-artifact");
    j.append_batch(evs).unwrap();
    append_all(&j, "r3", one_of_each("r3"));
    let mut buf = Vec::new();
    let summary = j.export_jsonl(&mut buf, true).unwrap();
    assert_eq!(summary.events, j.event_count().unwrap());
    assert_eq!(summary.artifacts, 1);

    let k = target.open();
    let imported = k.import_jsonl(&buf[..], "export.jsonl").unwrap();
    assert_eq!(imported, summary);
    assert_eq!(j.dump_views().unwrap(), k.dump_views().unwrap());
    assert_eq!(
        j.events(&EventFilter::default()).unwrap(),
        k.events(&EventFilter::default()).unwrap()
    );
    assert_eq!(
        k.get_artifact(&art).unwrap(),
        b"--- a/pipeline.toml\n+++ b/pipeline.toml\n"
    );
    assert_eq!(
        k.find_by_key("r2/with-artifact")
            .unwrap()
            .unwrap()
            .artifacts,
        vec![art]
    );
    k.verify().unwrap();

    // Importing again into a non-empty journal is refused.
    let err = k.import_jsonl(&buf[..], "export.jsonl").unwrap_err();
    assert!(matches!(err, JournalError::NotEmpty { .. }), "{err}");
}

pub fn import_rejects_tampering(db: &TestDb) {
    let j = db.open();
    append_all(&j, "r1", one_of_each("r1"));
    let mut buf = Vec::new();
    j.export_jsonl(&mut buf, false).unwrap();
    let text = String::from_utf8(buf).unwrap();
    // Change the content of line 4 (event #3) without fixing its checksum.
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut tampered = lines.clone();
    tampered[3] = tampered[3].replace("Tune EASE regularisation", "Tune EASE regularization");
    assert_ne!(tampered[3], lines[3]);
    let target = TestDb::new(db.kind).unwrap();
    let k = target.open();
    let err = k
        .import_jsonl(tampered.join("\n").as_bytes(), "x.jsonl")
        .unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");
    assert_eq!(k.event_count().unwrap(), 0, "failed import writes nothing");
    // A gap.
    let mut gap = lines.clone();
    gap.remove(2);
    let err = k
        .import_jsonl(gap.join("\n").as_bytes(), "x.jsonl")
        .unwrap_err();
    assert!(err.to_string().contains("line 3"), "{err}");
    // Not an export.
    let err = k
        .import_jsonl(&b"{\"hello\":1}\n"[..], "x.jsonl")
        .unwrap_err();
    assert!(err.to_string().contains("line 1"), "{err}");
    let err = k.import_jsonl(&b""[..], "x.jsonl").unwrap_err();
    assert!(err.to_string().contains("header"), "{err}");
}

pub fn future_and_foreign_databases_are_refused(db: &TestDb) {
    {
        let j = db.open();
        append_all(&j, "r1", one_of_each("r1"));
    }
    db.exec_raw(&format!(
        "UPDATE meta SET value = '{}' WHERE key = 'schema_version'",
        SCHEMA_VERSION + 1
    ));
    let err = recloop_journal::Journal::open(&db.url).unwrap_err();
    assert!(
        matches!(err, JournalError::FutureSchema { found, .. } if found == SCHEMA_VERSION + 1),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade recloop"), "{err}");

    let foreign = TestDb::new(db.kind).unwrap();
    foreign.exec_raw("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)");
    let err = recloop_journal::Journal::open(&foreign.url).unwrap_err();
    assert!(matches!(err, JournalError::Foreign { .. }), "{err}");
    assert!(err.to_string().contains("customers"), "{err}");

    let other_app = TestDb::new(db.kind).unwrap();
    other_app.exec_raw("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL); INSERT INTO meta VALUES ('app', 'something-else')");
    let err = recloop_journal::Journal::open(&other_app.url).unwrap_err();
    assert!(err.to_string().contains("something-else"), "{err}");
}

pub fn tampered_rows_fail_verification(db: &TestDb) {
    {
        let j = db.open();
        append_all(&j, "r1", one_of_each("r1"));
    }
    db.exec_raw("UPDATE events SET body = replace(body, 'EASE', 'EAZE') WHERE seq = 3");
    let j = db.open();
    let err = j.verify().unwrap_err();
    assert!(
        err.to_string().contains("event #3") && err.to_string().contains("checksum"),
        "{err}"
    );
    drop(j);
    db.exec_raw("DELETE FROM events WHERE seq = 5");
    let j = db.open();
    let err = j.verify().unwrap_err();
    assert!(
        err.to_string().contains("gap") || err.to_string().contains("checksum"),
        "{err}"
    );
}

pub fn concurrent_writers_stay_gap_free(db: &TestDb) {
    // Two independent handles (separate connection pools, like two processes) and several
    // threads on each.
    let a = db.open();
    let b = db.open();
    let mut threads = Vec::new();
    for t in 0..4 {
        let j = if t % 2 == 0 { a.clone() } else { b.clone() };
        threads.push(std::thread::spawn(move || {
            for i in 0..25 {
                j.append(
                    NewEvent::new(
                        format!("r{t}"),
                        i,
                        Event::ProposalAdmitted {
                            proposal_id: format!("p-{t}-{i}"),
                        },
                    )
                    .key(format!("k-{t}-{i}")),
                )
                .unwrap();
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    let report = a.verify().unwrap();
    assert_eq!((report.events, report.last_seq, report.runs), (100, 100, 4));
    assert_eq!(b.experiments().unwrap().len(), 100);
}

pub fn works_inside_a_tokio_runtime(db: &TestDb) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = db.url.clone();
    rt.block_on(async move {
        // The blocking facade inside async code (agents may do this) ...
        let j = recloop_journal::Journal::open(&url).unwrap();
        j.append(NewEvent::new(
            "r",
            0,
            Event::ProposalAdmitted {
                proposal_id: "p".into(),
            },
        ))
        .unwrap();
        assert_eq!(j.event_count().unwrap(), 1);
        drop(j);
        // ... and the async handle.
        let aj = recloop_journal::AsyncJournal::open(&url).await.unwrap();
        let id = aj
            .append(NewEvent::new(
                "r",
                0,
                Event::ProposalAdmitted {
                    proposal_id: "q".into(),
                },
            ))
            .await
            .unwrap();
        assert_eq!(id.seq, 2);
        assert_eq!(aj.experiments().await.unwrap().len(), 2);
        aj.close().await;
    });
}

pub fn artifacts_are_content_addressed(db: &TestDb) {
    let j = db.open();
    let h = j.put_artifact(b"metrics {\"ndcg@10\": 0.4}").unwrap();
    assert_eq!(h, j.put_artifact(b"metrics {\"ndcg@10\": 0.4}").unwrap());
    assert_eq!(
        h,
        recloop_journal::ArtifactHash::of(b"metrics {\"ndcg@10\": 0.4}")
    );
    assert_eq!(j.get_artifact(&h).unwrap(), b"metrics {\"ndcg@10\": 0.4}");
    let missing = recloop_journal::ArtifactHash::of(b"absent");
    let err = j.get_artifact(&missing).unwrap_err();
    assert!(matches!(err, JournalError::NotFound { .. }), "{err}");
}

pub fn future_events_and_exports_are_refused(db: &TestDb) {
    let j = db.open();
    append_all(&j, "r1", one_of_each("r1"));
    let mut buf = Vec::new();
    j.export_jsonl(&mut buf, false).unwrap();
    let text = String::from_utf8(buf).unwrap();
    // An export written by a newer recloop (database schema or event format).
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut header: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    header["schema_version"] = serde_json::json!(SCHEMA_VERSION + 1);
    lines[0] = header.to_string();
    let target = TestDb::new(db.kind).unwrap();
    let k = target.open();
    let err = k
        .import_jsonl(lines.join("\n").as_bytes(), "new.jsonl")
        .unwrap_err();
    assert!(matches!(err, JournalError::FutureSchema { .. }), "{err}");
    assert!(
        err.to_string().contains("new.jsonl") && err.to_string().contains("upgrade recloop"),
        "{err}"
    );
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut rec: serde_json::Value = serde_json::from_str(&lines[2]).unwrap();
    rec["schema_version"] = serde_json::json!(recloop_journal::EVENT_SCHEMA_VERSION + 1);
    lines[2] = rec.to_string();
    let err = k
        .import_jsonl(lines.join("\n").as_bytes(), "new.jsonl")
        .unwrap_err();
    assert!(matches!(err, JournalError::FutureSchema { .. }), "{err}");
    assert_eq!(k.event_count().unwrap(), 0);
    drop(j);
    // An event row written in a newer event format: reading it says so instead of misreading.
    db.exec_raw(&format!(
        "UPDATE events SET schema_version = {} WHERE seq = 3",
        recloop_journal::EVENT_SCHEMA_VERSION + 1
    ));
    let j = db.open();
    let err = j.events(&EventFilter::default()).unwrap_err();
    assert!(matches!(err, JournalError::FutureSchema { .. }), "{err}");
    let err = j.verify().unwrap_err();
    assert!(err.to_string().contains("upgrade recloop"), "{err}");
    // Events before it are still readable.
    assert_eq!(j.event(2).unwrap().unwrap().seq, 2);
}

/// `query_read_only`: reads views and the log, refuses writes (nothing changes), truncates at
/// the row limit and stops at the time limit.
pub fn read_only_queries(db: &TestDb) {
    use std::time::{Duration, Instant};
    let j = db.open();
    let events = one_of_each("r1");
    append_all(&j, "r1", events.clone());
    let five = Duration::from_secs(5);
    let r = j
        .query_read_only(
            "SELECT count(*) AS n, avg(seq) AS mean_seq FROM events;",
            200,
            five,
        )
        .unwrap();
    assert_eq!(r.columns, ["n", "mean_seq"]);
    assert_eq!(r.rows[0][0].as_i64(), Some(events.len() as i64));
    // REAL in SQLite, NUMERIC (as text) in PostgreSQL
    let mean = r.rows[0][1]
        .as_f64()
        .or_else(|| r.rows[0][1].as_str().and_then(|s| s.parse().ok()))
        .unwrap();
    assert!(
        (mean - (events.len() as f64 + 1.0) / 2.0).abs() < 1e-9,
        "{r:?}"
    );
    let verdicts = j
        .query_read_only(
            "SELECT proposal_id, verdict FROM v_experiments WHERE verdict IS NOT NULL",
            200,
            five,
        )
        .unwrap();
    assert!(!verdicts.rows.is_empty(), "{verdicts:?}");
    assert!(verdicts.to_table().starts_with("proposal_id | verdict\n"));

    let mut writes = vec![
        "INSERT INTO events (seq) VALUES (999)".to_string(),
        "DELETE FROM events".into(),
        "DROP TABLE v_experiments".into(),
        "UPDATE v_experiments SET verdict = 'keep'".into(),
        "SELECT 1; DELETE FROM events".into(),
        "WITH d AS (DELETE FROM events RETURNING seq) SELECT count(*) FROM d".into(),
    ];
    if db.kind == crate::common::Kind::Postgres {
        // passes the text checks; the READ ONLY transaction refuses it
        db.exec_raw("CREATE SEQUENCE analysis_probe");
        writes.push("SELECT nextval('analysis_probe')".into());
    }
    for w in &writes {
        match j.query_read_only(w, 200, five) {
            Err(JournalError::Query { .. }) => {}
            other => panic!("{w:?} must be refused, got {other:?}"),
        }
    }
    assert_eq!(j.event_count().unwrap(), events.len() as u64);
    assert_eq!(j.experiments().unwrap().len(), views_count(&j));
    j.verify().unwrap();
    if db.kind == crate::common::Kind::Postgres {
        // common PostgreSQL types are decoded from the binary format
        let t = j
            .query_read_only(
                "SELECT 7::int2 AS a, true AS b, 2.50::numeric AS c, 'x'::varchar AS d, \
                 NULL::text AS e, 1.5::float4 AS f, DATE '2024-01-02' AS g, \
                 '{\"k\": 1}'::jsonb AS h, -12345678901::int8 AS i",
                200,
                five,
            )
            .unwrap();
        assert_eq!(
            t.to_table(),
            "a | b | c | d | e | f | g | h | i\n7 | true | 2.5 | x | NULL | 1.5 | 2024-01-02 | \
             {\"k\": 1} | -12345678901\n(1 row)"
        );
        let seq = j
            .query_read_only("SELECT is_called FROM analysis_probe", 200, five)
            .unwrap();
        assert_eq!(seq.rows[0][0].as_str(), Some("false"), "nextval ran");
    }

    let many = j
        .query_read_only(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 500) \
             SELECT x FROM c",
            200,
            five,
        )
        .unwrap();
    assert_eq!(many.rows.len(), 200);
    assert!(many.truncated);
    assert!(many.to_table().ends_with("(truncated at 200 rows)"));

    let started = Instant::now();
    let e = j
        .query_read_only(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
            200,
            Duration::from_millis(500),
        )
        .unwrap_err();
    let took = started.elapsed();
    assert!(e.to_string().contains("time limit"), "{e}");
    assert!(took < Duration::from_secs(4), "stopped after {took:?}");
    eprintln!(
        "{:?}: runaway query stopped after {took:?} (limit 500 ms)",
        db.kind
    );
    // the journal still works
    assert_eq!(j.event_count().unwrap(), events.len() as u64);
    let e = j
        .query_read_only("SELECT no_such_column FROM events", 200, five)
        .unwrap_err();
    assert!(e.to_string().contains("no_such_column"), "{e}");
}

fn views_count(j: &recloop_journal::Journal) -> usize {
    let r = j
        .query_read_only(
            "SELECT count(*) FROM v_experiments",
            200,
            std::time::Duration::from_secs(5),
        )
        .unwrap();
    r.rows[0][0].as_i64().unwrap() as usize
}

/// Logs kept in PostgreSQL (`PgLogs`): tables with the team's own names, in the schema the URL
/// names, are queried as `exposures` and `events`; writes are refused and change nothing; the
/// row and time limits hold; a missing relation is an error that says so.
pub fn logs_in_postgres(db: &TestDb) {
    use recloop_journal::PgLogs;
    use std::time::Duration;
    let schema = db.url.rsplit("schema=").next().unwrap().to_string();
    let base = db.url.split('?').next().unwrap().to_string();
    let setup = [
        format!("CREATE SCHEMA {schema}"),
        format!(
            "CREATE TABLE {schema}.ab_exposures (unit_id int8, experiment text, arm text, \
             ts int8, day int4, extra text)"
        ),
        format!(
            "CREATE TABLE {schema}.ab_events (unit_id int8, ts int8, day int4, metric text, \
             value float8)"
        ),
        format!(
            "INSERT INTO {schema}.ab_exposures SELECT u, 'prod', CASE WHEN u % 2 = 0 THEN \
             'control' ELSE 'treatment' END, u, u % 7, 'x' FROM generate_series(1, 500) u"
        ),
        format!(
            "INSERT INTO {schema}.ab_events SELECT u, u, u % 7, 'clicks', (u % 3)::float8 \
             FROM generate_series(1, 500) u"
        ),
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&base).await.unwrap();
        for sql in &setup {
            sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .execute(&mut c)
                .await
                .unwrap();
        }
    });
    let five = Duration::from_secs(5);
    // the URL's schema is searched first, so the relations need no schema prefix
    let logs = PgLogs::connect(&db.url, "ab_exposures", "ab_events").unwrap();
    assert!(logs.location().contains(&schema), "{}", logs.location());
    let r = logs
        .query_read_only(
            "SELECT x.arm, COUNT(*) AS units, SUM(e.value) AS clicks FROM exposures x \
             JOIN events e ON e.unit_id = x.unit_id GROUP BY x.arm ORDER BY x.arm",
            200,
            five,
        )
        .unwrap();
    assert_eq!(r.columns, ["arm", "units", "clicks"]);
    assert_eq!(r.rows.len(), 2, "{r:?}");
    assert_eq!(r.rows[0][0].as_str(), Some("control"));
    assert_eq!(r.rows[0][1].as_i64(), Some(250));
    // only the named columns are shown: the table's own `extra` is not
    let err = logs
        .query_read_only("SELECT extra FROM exposures", 200, five)
        .unwrap_err();
    assert!(err.to_string().contains("extra"), "{err}");
    // the model's own WITH works beside the prelude's
    let r = logs
        .query_read_only(
            "WITH d AS (SELECT day, COUNT(*) AS n FROM events GROUP BY day) SELECT MAX(n) FROM d",
            200,
            five,
        )
        .unwrap();
    assert_eq!(r.rows[0][0].as_i64(), Some(72), "{r:?}");
    // writes are refused and change nothing
    for w in [
        "DELETE FROM exposures",
        "SELECT 1; DROP TABLE events",
        "WITH gone AS (DELETE FROM ab_events RETURNING 1) SELECT count(*) FROM gone",
    ] {
        assert!(logs.query_read_only(w, 200, five).is_err(), "{w}");
    }
    let n = logs
        .query_read_only("SELECT COUNT(*) FROM events", 200, five)
        .unwrap();
    assert_eq!(n.rows[0][0].as_i64(), Some(500));
    // the row limit truncates, the time limit stops
    let r = logs
        .query_read_only("SELECT unit_id FROM exposures", 10, five)
        .unwrap();
    assert!(r.truncated && r.rows.len() == 10, "{r:?}");
    let err = logs
        .query_read_only("SELECT pg_sleep(3)", 10, Duration::from_millis(300))
        .unwrap_err();
    assert!(err.to_string().contains("time limit"), "{err}");
    // relations named wrong: the database's own message, through the same error
    let wrong = PgLogs::connect(&base, "no_such_table", "ab_events").unwrap();
    let err = wrong
        .query_read_only("SELECT COUNT(*) FROM exposures", 10, five)
        .unwrap_err();
    assert!(err.to_string().contains("no_such_table"), "{err}");
}
