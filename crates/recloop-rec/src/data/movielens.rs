//! Loading MovieLens in RecBole's atomic-file format.
//!
//! `NAME.inter` is tab-separated with a header of `field:type` names; the columns `user_id`,
//! `item_id` (required), `rating` (default 1) and `timestamp` (default 0) are read, in any order.
//! `NAME.item` (optional) gives per item a title (`movie_title`) and genres (`class` in ML-100K,
//! `genre` in ML-1M; space-separated). Parsing is hand-rolled over the raw bytes, in parallel
//! chunks of lines whose ids are merged in file order.

use super::DatasetName;
use super::dataset::Dataset;
use super::parse::{Fnv, IdMap, lines, parse_f64, parse_i64};
use crate::error::{RecError, Result};
use rayon::prelude::*;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::path::Path;

/// Load `<dir>/<name>.inter` and, if present, `<dir>/<name>.item`.
pub fn load_dir(name: DatasetName, dir: &Path) -> Result<Dataset> {
    if name == DatasetName::Obd {
        return Err(RecError::Data {
            name: name.as_str().into(),
            reason: "obd is a bandit log, not a rating dataset; load it with data::obd::load"
                .into(),
        });
    }
    let inter = dir.join(format!("{}.inter", name.as_str()));
    let item = dir.join(format!("{}.item", name.as_str()));
    load_files(
        name.as_str(),
        &inter,
        item.is_file().then_some(item.as_path()),
    )
}

/// Load an interaction file and an optional item file; `name` labels the dataset and errors.
pub fn load_files(name: &str, inter: &Path, item: Option<&Path>) -> Result<Dataset> {
    let bytes = read(inter)?;
    let mut ds = parse_inter(name, &inter.display().to_string(), &bytes)?;
    ds.item_titles = vec![String::new(); ds.n_items()];
    ds.item_genres = vec![Vec::new(); ds.n_items()];
    if let Some(item) = item {
        let bytes = read(item)?;
        parse_items(&mut ds, &item.display().to_string(), &bytes)?;
    }
    Ok(ds)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| RecError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn data_err(name: &str, file: &str, line: usize, reason: impl std::fmt::Display) -> RecError {
    RecError::Data {
        name: name.to_string(),
        reason: format!("{file}:{line}: {reason}"),
    }
}

/// Column positions from a RecBole header (`user_id:token\titem_id:token...`).
fn header_columns(header: &[u8]) -> Vec<String> {
    header
        .split(|&b| b == b'\t')
        .map(|f| {
            let f = String::from_utf8_lossy(f);
            f.split(':').next().unwrap_or("").trim().to_string()
        })
        .collect()
}

/// Parse the bytes of an `.inter` file (`file` names it in errors).
pub fn parse_inter(name: &str, file: &str, bytes: &[u8]) -> Result<Dataset> {
    let mut it = lines(bytes);
    let header = match it.next() {
        Some((_, h)) if !h.is_empty() => h,
        _ => {
            return Err(data_err(
                name,
                file,
                1,
                "empty file, expected a header line",
            ));
        }
    };
    let cols = header_columns(header);
    let find = |c: &str| cols.iter().position(|x| x == c);
    let (Some(cu), Some(ci)) = (find("user_id"), find("item_id")) else {
        return Err(data_err(
            name,
            file,
            1,
            format!("header must name user_id and item_id columns, found {cols:?}"),
        ));
    };
    let layout = Layout {
        ncols: cols.len(),
        user: cu,
        item: ci,
        rating: find("rating"),
        timestamp: find("timestamp"),
    };
    // The body after the header line is cut at line boundaries into chunks that are parsed in
    // parallel, each with its own id maps; the chunks' ids are then merged in file order, so
    // indices are by first appearance in the file, exactly as a sequential pass gives them.
    let body_start = bytes
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |p| p + 1);
    let body = &bytes[body_start..];
    let chunks = line_chunks(body, rayon::current_num_threads() * 4);
    let parsed: Vec<std::result::Result<Chunk<'_>, (usize, String)>> = chunks
        .par_iter()
        .map(|chunk| parse_chunk(chunk, &layout))
        .collect();
    let mut users = IdMap::default();
    let mut items = IdMap::default();
    let mut tables = Vec::with_capacity(parsed.len());
    for (k, result) in parsed.iter().enumerate() {
        match result {
            Ok(c) => tables.push((
                c.user_keys
                    .iter()
                    .map(|k| users.index(k))
                    .collect::<Vec<u32>>(),
                c.item_keys
                    .iter()
                    .map(|k| items.index(k))
                    .collect::<Vec<u32>>(),
            )),
            // the line number is only needed for an error: count the lines before it here
            Err((local_line, reason)) => {
                let before: usize = chunks[..k]
                    .iter()
                    .map(|c| c.iter().filter(|&&b| b == b'\n').count())
                    .sum();
                return Err(data_err(name, file, 1 + before + local_line, reason));
            }
        }
    }
    let chunks: Vec<Chunk<'_>> = parsed.into_iter().flatten().collect();
    let global = |local: &[u32], table: &[u32]| -> Vec<u32> {
        local.iter().map(|&l| table[l as usize]).collect()
    };
    let mapped: Vec<(Vec<u32>, Vec<u32>)> = chunks
        .par_iter()
        .zip(tables.par_iter())
        .map(|(c, (tu, ti))| (global(&c.users, tu), global(&c.items, ti)))
        .collect();
    Ok(Dataset {
        name: name.to_string(),
        users: mapped.iter().flat_map(|m| m.0.iter().copied()).collect(),
        items: mapped.iter().flat_map(|m| m.1.iter().copied()).collect(),
        ratings: chunks
            .iter()
            .flat_map(|c| c.ratings.iter().copied())
            .collect(),
        timestamps: chunks
            .iter()
            .flat_map(|c| c.timestamps.iter().copied())
            .collect(),
        user_ids: users.ids,
        item_ids: items.ids,
        ..Dataset::default()
    })
}

/// Where the fields of an `.inter` line are.
struct Layout {
    ncols: usize,
    user: usize,
    item: usize,
    rating: Option<usize>,
    timestamp: Option<usize>,
}

/// The rows of one chunk, with ids local to the chunk (in order of first appearance in it).
#[derive(Default)]
struct Chunk<'a> {
    users: Vec<u32>,
    items: Vec<u32>,
    ratings: Vec<f32>,
    timestamps: Vec<i64>,
    user_keys: Vec<&'a [u8]>,
    item_keys: Vec<&'a [u8]>,
}

/// Dense local ids of byte keys borrowed from the file.
#[derive(Default)]
struct LocalIds<'a> {
    map: HashMap<&'a [u8], u32, BuildHasherDefault<Fnv>>,
    last: Option<(&'a [u8], u32)>,
}

impl<'a> LocalIds<'a> {
    fn index(&mut self, key: &'a [u8], keys: &mut Vec<&'a [u8]>) -> u32 {
        // consecutive rows usually share the user: skip the hash then
        if let Some((k, i)) = self.last
            && k == key
        {
            return i;
        }
        let next = keys.len() as u32;
        let i = *self.map.entry(key).or_insert_with(|| {
            keys.push(key);
            next
        });
        self.last = Some((key, i));
        i
    }
}

/// `buf` cut into about `n` pieces, each ending just after a `\n` (the last at the end).
fn line_chunks(buf: &[u8], n: usize) -> Vec<&[u8]> {
    let target = buf.len().div_ceil(n.max(1)).max(1);
    let mut out = Vec::with_capacity(n + 1);
    let mut start = 0;
    while start < buf.len() {
        let mut end = (start + target).min(buf.len());
        while end < buf.len() && buf[end - 1] != b'\n' {
            end += 1;
        }
        out.push(&buf[start..end]);
        start = end;
    }
    out
}

/// Parse the lines of `chunk`; an error carries the line number within the chunk (from 1).
fn parse_chunk<'a>(
    chunk: &'a [u8],
    layout: &Layout,
) -> std::result::Result<Chunk<'a>, (usize, String)> {
    let cap = chunk.len() / 24;
    let mut c = Chunk {
        users: Vec::with_capacity(cap),
        items: Vec::with_capacity(cap),
        ratings: Vec::with_capacity(cap),
        timestamps: Vec::with_capacity(cap),
        ..Chunk::default()
    };
    let (mut users, mut items) = (LocalIds::default(), LocalIds::default());
    let mut fields: Vec<&[u8]> = Vec::with_capacity(layout.ncols);
    for (no, line) in lines(chunk) {
        if line.is_empty() {
            continue;
        }
        fields.clear();
        fields.extend(line.split(|&b| b == b'\t'));
        if fields.len() != layout.ncols {
            return Err((
                no,
                format!(
                    "expected {} tab-separated fields, found {}",
                    layout.ncols,
                    fields.len()
                ),
            ));
        }
        let rating = match layout.rating {
            Some(col) => parse_f64(fields[col]).ok_or_else(|| {
                (
                    no,
                    format!(
                        "field rating: not a number: {:?}",
                        String::from_utf8_lossy(fields[col])
                    ),
                )
            })? as f32,
            None => 1.0,
        };
        let timestamp = match layout.timestamp {
            Some(col) => parse_i64(fields[col]).ok_or_else(|| {
                (
                    no,
                    format!(
                        "field timestamp: not an integer: {:?}",
                        String::from_utf8_lossy(fields[col])
                    ),
                )
            })?,
            None => 0,
        };
        c.users
            .push(users.index(fields[layout.user], &mut c.user_keys));
        c.items
            .push(items.index(fields[layout.item], &mut c.item_keys));
        c.ratings.push(rating);
        c.timestamps.push(timestamp);
    }
    Ok(c)
}

/// Parse the bytes of an `.item` file into `ds.item_titles`, `ds.genre_names`, `ds.item_genres`.
/// Items not in the interactions are ignored; items without a line keep empty metadata.
pub fn parse_items(ds: &mut Dataset, file: &str, bytes: &[u8]) -> Result<()> {
    let name = ds.name.clone();
    let mut it = lines(bytes);
    let header = match it.next() {
        Some((_, h)) if !h.is_empty() => h,
        _ => {
            return Err(data_err(
                &name,
                file,
                1,
                "empty file, expected a header line",
            ));
        }
    };
    let cols = header_columns(header);
    let find = |c: &str| cols.iter().position(|x| x == c);
    let Some(ci) = find("item_id") else {
        return Err(data_err(
            &name,
            file,
            1,
            format!("header must name an item_id column, found {cols:?}"),
        ));
    };
    let ctitle = find("movie_title");
    let cgenre = find("genre").or_else(|| find("class"));
    let mut index = IdMap::default();
    for id in &ds.item_ids {
        index.index(id.as_bytes());
    }
    let mut genres = IdMap::default();
    ds.item_titles.resize(ds.n_items(), String::new());
    ds.item_genres.resize(ds.n_items(), Vec::new());
    for (no, line) in it {
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&[u8]> = line.split(|&b| b == b'\t').collect();
        if fields.len() != cols.len() {
            return Err(data_err(
                &name,
                file,
                no,
                format!(
                    "expected {} tab-separated fields, found {}",
                    cols.len(),
                    fields.len()
                ),
            ));
        }
        let Some(i) = index.get(fields[ci]) else {
            continue;
        };
        let i = i as usize;
        if let Some(c) = ctitle {
            ds.item_titles[i] = String::from_utf8_lossy(fields[c]).trim().to_string();
        }
        if let Some(c) = cgenre {
            let mut g: Vec<u16> = fields[c]
                .split(|b| b.is_ascii_whitespace())
                .filter(|s| !s.is_empty())
                .map(|s| genres.index(s) as u16)
                .collect();
            g.sort_unstable();
            g.dedup();
            ds.item_genres[i] = g;
        }
    }
    ds.genre_names = genres.ids;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTER: &str = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n\
                         u1\tA (1990)\t5\t100\n\
                         u1\tB (1991)\t3\t90\n\
                         u2\tA (1990)\t4\t200\n";
    const ITEM: &str = "item_id:token\tmovie_title:token\trelease_year:float\tgenre:token\n\
                        A (1990)\tA\t1990\tDrama Comedy\n\
                        B (1991)\tB\t1991\tComedy\n\
                        Z (1999)\tZ\t1999\tHorror\n";

    #[test]
    fn parallel_chunks_keep_first_appearance_order_and_line_numbers() {
        // 5,000 lines (many chunks): ids recur across chunk boundaries
        let mut text = String::from("user_id:token\titem_id:token\trating:float\n");
        let (mut want_users, mut want_items): (Vec<String>, Vec<String>) = (vec![], vec![]);
        let (mut rows_u, mut rows_i) = (vec![], vec![]);
        for k in 0..5000u64 {
            let u = format!("u{}", (k / 7) % 300);
            let i = format!("i{}", (k * 7919) % 1013);
            text.push_str(&format!("{u}\t{i}\t{}\n", 1 + k % 5));
            for (id, ids, rows) in [
                (&u, &mut want_users, &mut rows_u),
                (&i, &mut want_items, &mut rows_i),
            ] {
                let pos = ids.iter().position(|x| x == id).unwrap_or_else(|| {
                    ids.push(id.clone());
                    ids.len() - 1
                });
                rows.push(pos as u32);
            }
        }
        let ds = parse_inter("t", "t.inter", text.as_bytes()).unwrap();
        assert_eq!(ds.user_ids, want_users);
        assert_eq!(ds.item_ids, want_items);
        assert_eq!(ds.users, rows_u);
        assert_eq!(ds.items, rows_i);
        assert_eq!(ds.ratings[4999], (1 + 4999 % 5) as f32);
        // a bad line far into the file is reported with its own line number
        let bad = text.replacen("u285\t", "u285\tx\t", 1);
        let line = 1 + bad.lines().position(|l| l.contains("\tx\t")).unwrap();
        let err = parse_inter("t", "t.inter", bad.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("t.inter:{}:", line)),
            "{err} (want line {line})"
        );
    }

    #[test]
    fn parses_inter_and_items() {
        let mut ds = parse_inter("fx", "fx.inter", INTER.as_bytes()).unwrap();
        assert_eq!(ds.users, vec![0, 0, 1]);
        assert_eq!(ds.items, vec![0, 1, 0]);
        assert_eq!(ds.ratings, vec![5.0, 3.0, 4.0]);
        assert_eq!(ds.timestamps, vec![100, 90, 200]);
        assert_eq!(ds.item_ids, vec!["A (1990)", "B (1991)"]);
        parse_items(&mut ds, "fx.item", ITEM.as_bytes()).unwrap();
        // Z is not rated, so its genre Horror never enters the vocabulary
        assert_eq!(ds.genre_names, vec!["Drama", "Comedy"]);
        assert_eq!(ds.item_genres, vec![vec![0, 1], vec![1]]);
        assert_eq!(ds.item_titles, vec!["A", "B"]);
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let bad = "user_id:token\titem_id:token\trating:float\n1\t2\t5\n1\t3\tfive\n";
        let e = parse_inter("fx", "fx.inter", bad.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains("fx.inter:3") && e.contains("rating"), "{e}");
        let short = "user_id:token\titem_id:token\trating:float\n1\t2\n";
        let e = parse_inter("fx", "fx.inter", short.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("fx.inter:2") && e.contains("3 tab-separated"),
            "{e}"
        );
        let nohdr = "foo\tbar\n";
        let e = parse_inter("fx", "fx.inter", nohdr.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains("user_id"), "{e}");
        assert!(parse_inter("fx", "fx.inter", b"").is_err());
    }
}
