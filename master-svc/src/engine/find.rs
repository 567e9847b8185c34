//! Finding tasks: the checks on tags at submission, and the filters of `GET /tasks` and of a
//! bulk operation turned into the store's [`Search`].

use common::{BulkFilter, ListTasks, MAX_BULK_IDS, MAX_TAG_CHARS, MAX_TAGS, TaskState};
use time::OffsetDateTime;

use super::validate::{self, Checked, echo, invalid};
use crate::model::Millis;
use crate::store::Search;

/// A submission's tags, checked (at most [`MAX_TAGS`], each 1 to [`MAX_TAG_CHARS`] characters),
/// sorted and without duplicates: the set is what is kept and compared on a resubmission.
pub(super) fn tags(mut tags: Vec<String>) -> Checked<Vec<String>> {
    if let Some(bad) = tags
        .iter()
        .find(|tag| !(1..=MAX_TAG_CHARS).contains(&tag.chars().count()))
    {
        return invalid(format!(
            "each of `tags` must be 1 to {MAX_TAG_CHARS} characters long, not {} (`{}`)",
            bad.chars().count(),
            echo(bad)
        ));
    }
    tags.sort_unstable();
    tags.dedup();
    if tags.len() > MAX_TAGS {
        return invalid(format!(
            "`tags` holds at most {MAX_TAGS} different tags, not {}",
            tags.len()
        ));
    }
    Ok(tags)
}

/// What tasks a listing or a bulk operation selects: queue, state and the rest.
#[derive(Debug, Clone, Default)]
pub(super) struct Selection {
    pub(super) queue: Option<String>,
    pub(super) state: Option<TaskState>,
    pub(super) search: Search,
}

/// The filters of `GET /tasks`, checked.
pub(super) fn listing(query: &ListTasks) -> Checked<Selection> {
    selection(BulkFilter {
        queue: query.queue.clone(),
        state: query.state,
        tag: query.tag.clone(),
        worker_id: query.worker_id.clone(),
        concurrency_key: query.concurrency_key.clone(),
        created_after: query.created_after,
        created_before: query.created_before,
        finished_after: query.finished_after,
        error_contains: query.error_contains.clone(),
        ids: None,
    })
}

/// A bulk operation's filter, checked.
pub(super) fn selection(filter: BulkFilter) -> Checked<Selection> {
    let queue = filter
        .queue
        .map(|queue| validate::queue_name(Some(&queue)))
        .transpose()?;
    if let Some(tag) = &filter.tag
        && !(1..=MAX_TAG_CHARS).contains(&tag.chars().count())
    {
        return invalid(format!(
            "`tag` must be 1 to {MAX_TAG_CHARS} characters long, not `{}`",
            echo(tag)
        ));
    }
    for (field, value) in [
        ("worker_id", &filter.worker_id),
        ("concurrency_key", &filter.concurrency_key),
    ] {
        if let Some(value) = value {
            validate::name(field, value)?;
        }
    }
    if filter.error_contains.as_deref() == Some("") {
        return invalid("`error_contains` must not be empty".into());
    }
    let ids = filter
        .ids
        .map(|ids| ids.iter().map(|id| id.0).collect::<Vec<_>>());
    if let Some(ids) = &ids {
        validate::in_range("filter.ids (count)", ids.len(), 1, MAX_BULK_IDS)?;
    }
    Ok(Selection {
        queue,
        state: filter.state,
        search: Search {
            tag: filter.tag,
            worker_id: filter.worker_id,
            concurrency_key: filter.concurrency_key,
            created_after: filter.created_after.map(millis),
            created_before: filter.created_before.map(millis),
            finished_after: filter.finished_after.map(millis),
            error_contains: filter.error_contains,
            ids,
        },
    })
}

fn millis(time: OffsetDateTime) -> Millis {
    (time.unix_timestamp_nanos() / 1_000_000).clamp(i64::MIN.into(), i64::MAX.into()) as i64
}

#[cfg(test)]
mod tests {

    #[test]
    fn tags_are_sorted_and_deduplicated_and_bad_ones_refused() {
        let tags_of = |tags: &[&str]| super::tags(tags.iter().map(|t| t.to_string()).collect());
        assert_eq!(tags_of(&["b", "a", "b"]).unwrap(), ["a", "b"]);
        assert!(tags_of(&[""]).is_err());
        assert!(tags_of(&[&"x".repeat(65)]).is_err());
        let seventeen: Vec<String> = (0..17).map(|i| i.to_string()).collect();
        assert!(super::tags(seventeen).is_err());
    }
}
