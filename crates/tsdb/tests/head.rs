//! Head behaviour through the storage traits.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use ember_model::{
    stale_nan, AppendError, Appendable, LabelHints, Labels, MatchOp, Matcher, Metadata, MetricType,
    Queryable, SelectHints,
};
use ember_tsdb::{Head, HeadOptions};

fn l(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs)
}

fn read_all(q: &dyn Queryable, mint: i64, maxt: i64, ms: &[Matcher]) -> Vec<(Labels, Vec<(i64, u64)>)> {
    let q = q.querier(mint, maxt).unwrap();
    let set = q.select(true, &SelectHints::default(), ms).unwrap();
    set.map(|s| {
        let mut s = s.unwrap();
        let mut v = vec![];
        while s.samples.next() {
            let (t, x) = s.samples.at();
            v.push((t, x.to_bits()));
        }
        assert!(s.samples.err().is_none());
        (s.labels, v)
    })
    .collect()
}

#[test]
fn rejections_are_classified_per_sample() {
    let head = Head::new(HeadOptions::default());
    let a_l = l(&[("__name__", "a")]);
    let mut app = head.appender();
    let r = app.append(None, &a_l, 1000, 1.0).unwrap();
    assert_eq!(app.append(Some(r), &a_l, 999, 1.0), Err(AppendError::OutOfOrder), "within the batch");
    assert_eq!(app.append(Some(r), &a_l, 1000, 2.0), Err(AppendError::DuplicateTimestamp));
    assert_eq!(app.append(Some(r), &a_l, 1000, 1.0), Ok(r), "identical duplicate ignored");
    app.append(Some(r), &a_l, 2000, stale_nan()).unwrap();
    assert_eq!(
        app.append(None, &Labels::empty(), 1, 1.0),
        Err(AppendError::InvalidLabels("empty labelset".into()))
    );
    let stats = app.commit().unwrap();
    assert_eq!((stats.samples_appended, stats.series_created), (2, 1));

    let mut app = head.appender();
    assert_eq!(app.append(None, &a_l, 1500, 1.0), Err(AppendError::OutOfOrder), "against committed");
    assert_eq!(app.append(None, &a_l, 2000, 1.0), Err(AppendError::DuplicateTimestamp));
    // Stale marker equal bits: identical duplicate.
    assert!(app.append(None, &a_l, 2000, stale_nan()).is_ok());
    // Half a chunk range (1h) before the newest sample is out of bounds.
    let b_l = l(&[("__name__", "b")]);
    assert_eq!(app.append(None, &b_l, 2000 - 3_600_000 - 1, 1.0), Err(AppendError::OutOfBounds));
    assert!(app.append(None, &b_l, 2000 - 3_600_000, 1.0).is_ok());
    app.commit().unwrap();

    let got = read_all(&head, i64::MIN, i64::MAX, &[Matcher::equal("__name__", "a")]);
    assert_eq!(got, vec![(a_l, vec![(1000, 1.0f64.to_bits()), (2000, stale_nan().to_bits())])]);
    let m = head.metrics();
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(m.out_of_order_samples_total.load(Relaxed), 2);
    assert_eq!(m.duplicate_samples_total.load(Relaxed), 2);
    assert_eq!(m.out_of_bounds_samples_total.load(Relaxed), 1);
    assert_eq!(m.head_samples_appended_total.load(Relaxed), 3);
    assert_eq!(m.head_series.load(Relaxed), 2);
}

#[test]
fn samples_invisible_until_commit_and_rollback_discards() {
    let head = Head::new(HeadOptions::default());
    let s = l(&[("__name__", "x")]);
    let mut app = head.appender();
    app.append(None, &s, 10, 1.0).unwrap();
    assert!(read_all(&head, 0, 100, &[]).is_empty(), "not visible before commit");
    app.rollback();
    app.commit().unwrap();
    assert!(read_all(&head, 0, 100, &[]).is_empty(), "rolled back");
    let mut app = head.appender();
    app.append(None, &s, 10, 1.0).unwrap();
    drop(app);
    assert!(read_all(&head, 0, 100, &[]).is_empty(), "dropped without commit");
    let mut app = head.appender();
    app.append(None, &s, 10, 1.0).unwrap();
    app.commit().unwrap();
    assert_eq!(read_all(&head, 0, 100, &[]).len(), 1);
}

#[test]
fn chunks_cut_at_120_samples_and_range_boundaries() {
    let head = Head::new(HeadOptions::default());
    let s = l(&[("__name__", "x")]);
    // 15s interval from a range start: 2h = 480 samples -> 4 chunks of 120.
    let mut r = None;
    for i in 0..480 {
        let mut app = head.appender();
        r = Some(app.append(r, &s, i * 15_000, i as f64).unwrap());
        app.commit().unwrap();
    }
    let ser = head.series(r.unwrap().get()).unwrap();
    let chunks = ser.chunks(i64::MIN, i64::MAX);
    let sizes: Vec<u16> = chunks.iter().map(|c| u16::from_be_bytes([c.data[0], c.data[1]])).collect();
    assert_eq!(sizes, vec![120, 120, 120, 120]);
    // Next sample crosses the 2h boundary: a new chunk.
    let mut app = head.appender();
    app.append(r, &s, 7_200_000, 1.0).unwrap();
    app.commit().unwrap();
    let chunks = ser.chunks(i64::MIN, i64::MAX);
    assert_eq!(chunks.len(), 5);
    assert_eq!(chunks[4].mint, 7_200_000);
    assert!(chunks.windows(2).all(|w| w[0].maxt < w[1].mint));
    assert_eq!(head.metrics().head_chunks.load(std::sync::atomic::Ordering::Relaxed), 5);

    // A fast series starting mid-range: chunks never exceed 240 samples.
    let f = l(&[("__name__", "fast")]);
    let mut r = None;
    let mut app = head.appender();
    for i in 0..1000 {
        r = Some(app.append(r, &f, 7_200_000 + i, 0.0).unwrap());
    }
    app.commit().unwrap();
    let chunks = head.series(r.unwrap().get()).unwrap().chunks(i64::MIN, i64::MAX);
    assert!(chunks.iter().all(|c| u16::from_be_bytes([c.data[0], c.data[1]]) <= 240));
    let total: u32 = chunks.iter().map(|c| u16::from_be_bytes([c.data[0], c.data[1]]) as u32).sum();
    assert_eq!(total, 1000);
}

#[test]
fn select_sorts_trims_seeks_and_limits() {
    let head = Head::new(HeadOptions::default());
    let mut app = head.appender();
    for (i, job) in ["c", "a", "b"].iter().enumerate() {
        for inst in 0..3 {
            let s = l(&[("__name__", "up"), ("job", job), ("instance", &inst.to_string())]);
            for t in 0..300 {
                app.append(None, &s, t * 1000, (i * 1000 + t as usize) as f64).unwrap();
            }
        }
    }
    app.append(None, &l(&[("__name__", "other")]), 0, 0.0).unwrap();
    app.commit().unwrap();

    let ms = [Matcher::equal("__name__", "up"), Matcher::new(MatchOp::RegexMatch, "job", "a|b").unwrap()];
    let got = read_all(&head, 10_500, 20_000, &ms);
    let names: Vec<String> = got.iter().map(|(l, _)| l.to_string()).collect();
    let mut sorted = names.clone();
    sorted.sort_by(|a, b| {
        let la = got.iter().find(|x| x.0.to_string() == *a).unwrap().0.clone();
        let lb = got.iter().find(|x| x.0.to_string() == *b).unwrap().0.clone();
        la.cmp(&lb)
    });
    assert_eq!(names, sorted);
    assert_eq!(got.len(), 6);
    assert!(got.iter().all(|(l, _)| l.get("job") != Some("c")));
    for (_, s) in &got {
        let ts: Vec<i64> = s.iter().map(|x| x.0).collect();
        assert_eq!(ts, (11..=20).map(|x| x * 1000).collect::<Vec<_>>(), "trimmed to the querier range");
    }

    // Seek across chunk boundaries (chunks of 120 samples here).
    let q = head.querier(0, 299_000).unwrap();
    let mut set = q.select(true, &SelectHints::default(), &ms).unwrap();
    let mut s = set.next().unwrap().unwrap();
    assert!(s.samples.seek(250_500));
    assert_eq!(s.samples.at().0, 251_000);
    assert!(s.samples.seek(100), "backwards seek stays");
    assert_eq!(s.samples.at().0, 251_000);
    assert!(s.samples.next());
    assert_eq!(s.samples.at().0, 252_000);
    assert!(!s.samples.seek(300_000));
    assert!(!s.samples.next());

    let hints = SelectHints { limit: 4, ..Default::default() };
    assert_eq!(q.select(true, &hints, &ms).unwrap().count(), 4);
    // Out of the head's range: nothing.
    assert!(read_all(&head, 400_000, 500_000, &[]).is_empty());
    // `{job=""}` selects series without a job label.
    let got = read_all(&head, 0, 1000, &[Matcher::equal("job", "")]);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0.metric_name(), Some("other"));
}

#[test]
fn label_names_and_values() {
    let head = Head::new(HeadOptions::default());
    let mut app = head.appender();
    app.append(None, &l(&[("__name__", "a"), ("x", "1")]), 0, 0.0).unwrap();
    app.append(None, &l(&[("__name__", "a"), ("x", "2")]), 0, 0.0).unwrap();
    app.append(None, &l(&[("__name__", "b"), ("y", "3"), ("x", "3")]), 0, 0.0).unwrap();
    app.commit().unwrap();
    let q = head.querier(0, 10).unwrap();
    let h = LabelHints::default();
    assert_eq!(q.label_names(&h, &[]).unwrap(), vec!["__name__", "x", "y"]);
    assert_eq!(q.label_names(&h, &[Matcher::equal("__name__", "a")]).unwrap(), vec!["__name__", "x"]);
    assert_eq!(q.label_values("x", &h, &[]).unwrap(), vec!["1", "2", "3"]);
    assert_eq!(q.label_values("x", &h, &[Matcher::equal("__name__", "a")]).unwrap(), vec!["1", "2"]);
    assert_eq!(q.label_values("x", &LabelHints { limit: 2 }, &[]).unwrap(), vec!["1", "2"]);
    assert_eq!(q.label_values("y", &h, &[Matcher::equal("__name__", "a")]).unwrap(), Vec::<String>::new());
    let q = head.querier(20, 30).unwrap();
    assert!(q.label_names(&h, &[]).unwrap().is_empty(), "outside the head's time range");
}

#[test]
fn metadata_per_metric_family() {
    let head = Head::new(HeadOptions::default());
    let mut app = head.appender();
    let meta = Metadata { metric_type: MetricType::Counter, help: "requests".into(), unit: String::new() };
    app.update_metadata(None, &l(&[("__name__", "req_total"), ("code", "200")]), &meta).unwrap();
    assert_eq!(head.metadata("req_total"), None, "invisible before commit");
    app.commit().unwrap();
    assert_eq!(head.metadata("req_total"), Some(meta));
}

#[test]
fn concurrent_appenders_and_readers() {
    let head = Arc::new(Head::new(HeadOptions::default()));
    let mut handles = vec![];
    for w in 0..4 {
        let head = head.clone();
        handles.push(std::thread::spawn(move || {
            for batch in 0..50i64 {
                let mut app = head.appender();
                for s in 0..20 {
                    let lbl = l(&[("__name__", "m"), ("s", &s.to_string()), ("w", &w.to_string())]);
                    app.append(None, &lbl, batch * 1000, batch as f64).unwrap();
                }
                app.commit().unwrap();
            }
        }));
    }
    let reader = {
        let head = head.clone();
        std::thread::spawn(move || {
            for _ in 0..50 {
                let q = head.querier(i64::MIN, i64::MAX).unwrap();
                for s in q.select(true, &SelectHints::default(), &[Matcher::equal("__name__", "m")]).unwrap()
                {
                    let mut s = s.unwrap();
                    let mut last = i64::MIN;
                    while s.samples.next() {
                        assert!(s.samples.at().0 > last);
                        last = s.samples.at().0;
                    }
                }
            }
        })
    };
    for h in handles {
        h.join().unwrap();
    }
    reader.join().unwrap();
    let got = read_all(&*head, i64::MIN, i64::MAX, &[]);
    assert_eq!(got.len(), 80);
    assert!(got.iter().all(|(_, s)| s.len() == 50));
    assert_eq!(head.num_series(), 80);
    // Ids are unique and dense from 1.
    let mut ids: Vec<u64> = got.iter().map(|(l, _)| head.series_by_labels(l).unwrap().id()).collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=80).collect::<Vec<_>>());
}

#[test]
fn appender_reuse_after_rollback_and_commit() {
    let head = Head::new(HeadOptions::default());
    let s = l(&[("__name__", "x")]);
    let mut app = head.appender();
    app.append(None, &s, 100, 1.0).unwrap();
    app.rollback();
    // The rolled-back sample no longer constrains this batch.
    app.append(None, &s, 50, 2.0).unwrap();
    app.commit().unwrap();
    app.append(None, &s, 60, 3.0).unwrap();
    assert_eq!(app.append(None, &s, 55, 3.0), Err(AppendError::OutOfOrder));
    app.commit().unwrap();
    let got = read_all(&head, 0, 1000, &[]);
    assert_eq!(got[0].1, vec![(50, 2.0f64.to_bits()), (60, 3.0f64.to_bits())]);
    // Two appenders interleaving on one series: the later commit's
    // out-of-order sample is dropped at commit and counted.
    let mut a = head.appender();
    let mut b = head.appender();
    a.append(None, &s, 80, 1.0).unwrap();
    b.append(None, &s, 70, 1.0).unwrap();
    a.commit().unwrap();
    assert_eq!(b.commit().unwrap().samples_appended, 0);
    let got = read_all(&head, 0, 1000, &[]);
    assert_eq!(got[0].1.iter().map(|x| x.0).collect::<Vec<_>>(), vec![50, 60, 80]);
}

/// The rendered metrics pass `promtool check metrics` (Prometheus's own
/// exposition linter), when promtool is installed.
#[test]
fn metrics_pass_promtool_lint() {
    let promtool = std::path::Path::new("/usr/bin/promtool");
    if !promtool.exists() {
        return;
    }
    let head = Head::new(HeadOptions::default());
    let mut app = head.appender();
    app.append(None, &l(&[("__name__", "x")]), 1, 1.0).unwrap();
    app.commit().unwrap();
    let text = head.metrics().render();
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
