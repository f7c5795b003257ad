//! THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC 5256 §3), over the stored sort
//! fields of the messages a search found. Pure: messages in, a `* THREAD` line out.
//!
//! Every walk over the tree is a loop, not a recursion: a reply chain may be thousands of
//! messages deep and must not exhaust a thread's stack.

use crate::mail::sortkeys::{casemap, SortKeys};
use std::collections::HashMap;

/// One message to thread, in mailbox order (the order breaks ties of equal dates).
pub struct Item<'a> {
    /// What the reply shows: the sequence number or the UID.
    pub number: u32,
    /// The sent date, the INTERNALDATE when the message has no valid Date: (§2.2).
    pub sent: i64,
    pub keys: &'a SortKeys,
}

/// A node of the result: a message, or a dummy (`None`) holding siblings.
struct Node {
    item: Option<usize>,
    parent: Option<usize>,
    children: Vec<usize>,
}

struct Forest<'a> {
    items: &'a [Item<'a>],
    nodes: Vec<Node>,
}

impl<'a> Forest<'a> {
    fn new(items: &'a [Item<'a>]) -> Forest<'a> {
        Forest {
            items,
            nodes: Vec::with_capacity(items.len()),
        }
    }

    fn add(&mut self, item: Option<usize>) -> usize {
        self.nodes.push(Node {
            item,
            parent: None,
            children: Vec::new(),
        });
        self.nodes.len() - 1
    }

    /// (sent date, mailbox position) of a node; a dummy sorts as its first child.
    fn date(&self, mut node: usize) -> (i64, usize) {
        loop {
            match self.nodes[node].item {
                Some(i) => return (self.items[i].sent, i),
                None => match self.nodes[node].children.first() {
                    Some(&child) => node = child,
                    None => return (i64::MIN, 0),
                },
            }
        }
    }

    fn sort_by_date(&self, list: &mut [usize]) {
        list.sort_by_key(|&n| self.date(n));
    }

    /// Whether putting `child` under `parent` would close a loop. A node without
    /// children cannot (the common case, and it keeps long chains linear).
    fn would_loop(&self, parent: usize, child: usize) -> bool {
        parent == child
            || (!self.nodes[child].children.is_empty() && self.is_ancestor(child, parent))
    }

    /// Whether `ancestor` is `node` or above it.
    fn is_ancestor(&self, ancestor: usize, mut node: usize) -> bool {
        loop {
            if node == ancestor {
                return true;
            }
            match self.nodes[node].parent {
                Some(p) => node = p,
                None => return false,
            }
        }
    }

    fn link(&mut self, parent: usize, child: usize) {
        self.nodes[child].parent = Some(parent);
        self.nodes[parent].children.push(child);
    }

    /// Cuts a child from its parent lazily: the parent's list keeps a stale entry until
    /// [`Forest::drop_stale`], so that relinking many children of one busy parent stays
    /// linear.
    fn unlink(&mut self, child: usize) {
        self.nodes[child].parent = None;
    }

    /// Removes the entries [`Forest::unlink`] left behind (and any duplicates of a child
    /// linked twice to the same parent).
    fn drop_stale(&mut self) {
        let mut seen = vec![usize::MAX; self.nodes.len()];
        for p in 0..self.nodes.len() {
            let mut children = std::mem::take(&mut self.nodes[p].children);
            children.retain(|&c| {
                let live = self.nodes[c].parent == Some(p) && seen[c] != p;
                seen[c] = p;
                live
            });
            self.nodes[p].children = children;
        }
    }

    /// The node's message, or a dummy's first child's.
    fn first_item(&self, mut node: usize) -> Option<usize> {
        loop {
            match self.nodes[node].item {
                Some(i) => return Some(i),
                None => node = *self.nodes[node].children.first()?,
            }
        }
    }

    /// The `* THREAD` line.
    fn encode(&self, roots: &[usize]) -> String {
        enum Step {
            Text(&'static str),
            Body(usize),
        }
        let mut out = String::from("* THREAD");
        if !roots.is_empty() {
            out.push(' ');
        }
        let mut stack: Vec<Step> = Vec::new();
        for &root in roots.iter().rev() {
            stack.extend([Step::Text(")"), Step::Body(root), Step::Text("(")]);
        }
        while let Some(step) = stack.pop() {
            let node = match step {
                Step::Text(t) => {
                    out.push_str(t);
                    continue;
                }
                Step::Body(node) => node,
            };
            let children = &self.nodes[node].children;
            let item = self.nodes[node].item;
            if let Some(i) = item {
                out.push_str(&self.items[i].number.to_string());
            }
            // One child continues the chain; several are each parenthesised.
            if children.len() == 1 {
                stack.push(Step::Body(children[0]));
                if item.is_some() {
                    stack.push(Step::Text(" "));
                }
                continue;
            }
            for &child in children.iter().rev() {
                stack.extend([Step::Text(")"), Step::Body(child), Step::Text("(")]);
            }
            if item.is_some() && !children.is_empty() {
                stack.push(Step::Text(" "));
            }
        }
        out.push_str("\r\n");
        out
    }
}

fn subject_key(keys: &SortKeys) -> String {
    casemap(&keys.subject)
}

/// ORDEREDSUBJECT: messages grouped by base subject, each group a thread whose first
/// message (by sent date) has all the others as children; threads by their first date.
pub fn ordered_subject(items: &[Item]) -> String {
    let mut forest = Forest::new(items);
    let subjects: Vec<String> = items.iter().map(|i| subject_key(i.keys)).collect();
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| (&subjects[a], items[a].sent, a).cmp(&(&subjects[b], items[b].sent, b)));
    let mut roots = Vec::new();
    let mut current: Option<usize> = None;
    for (k, &i) in order.iter().enumerate() {
        let node = forest.add(Some(i));
        match current {
            Some(root) if subjects[order[k - 1]] == subjects[i] => forest.link(root, node),
            _ => {
                roots.push(node);
                current = Some(node);
            }
        }
    }
    forest.sort_by_date(&mut roots);
    forest.encode(&roots)
}

/// REFERENCES: the message-id links of RFC 5256 §3 steps 1 to 6.
pub fn references(items: &[Item]) -> String {
    let mut forest = Forest::new(items);
    let mut by_id: HashMap<&str, usize> = HashMap::with_capacity(items.len());
    // (1) Link each message under its last reference, the references in a chain.
    for (i, item) in items.iter().enumerate() {
        let own = match item.keys.message_id.as_deref() {
            Some(id) => match by_id.get(id) {
                // A duplicate Message-ID gets a unique one: a node of its own.
                Some(&n) if forest.nodes[n].item.is_some() => forest.add(Some(i)),
                Some(&n) => {
                    forest.nodes[n].item = Some(i);
                    n
                }
                None => {
                    let n = forest.add(Some(i));
                    by_id.insert(id, n);
                    n
                }
            },
            None => forest.add(Some(i)),
        };
        let mut previous: Option<usize> = None;
        for id in &item.keys.references {
            let node = match by_id.get(id.as_str()) {
                Some(&n) => n,
                None => {
                    let n = forest.add(None);
                    by_id.insert(id, n);
                    n
                }
            };
            if let Some(parent) = previous {
                // Existing links stay; none that would make a loop.
                if forest.nodes[node].parent.is_none() && !forest.would_loop(parent, node) {
                    forest.link(parent, node);
                }
            }
            previous = Some(node);
        }
        forest.unlink(own);
        if let Some(parent) = previous {
            if !forest.would_loop(parent, own) {
                forest.link(parent, own);
            }
        }
    }
    forest.drop_stale();
    // (2) The root set: every node without a parent.
    let all: Vec<usize> = (0..forest.nodes.len()).collect();
    let mut roots: Vec<usize> = all
        .iter()
        .copied()
        .filter(|&n| forest.nodes[n].parent.is_none())
        .collect();
    // (3) Prune dummies, children first: below the root a dummy's children take its
    // place; at the root only a single child does.
    let mut preorder = Vec::with_capacity(forest.nodes.len());
    let mut stack: Vec<usize> = roots.clone();
    while let Some(n) = stack.pop() {
        preorder.push(n);
        stack.extend(forest.nodes[n].children.iter().copied());
    }
    for &n in preorder.iter().rev() {
        let children = std::mem::take(&mut forest.nodes[n].children);
        let mut kept = Vec::with_capacity(children.len());
        for child in children {
            if forest.nodes[child].item.is_some() {
                kept.push(child);
                continue;
            }
            for grandchild in std::mem::take(&mut forest.nodes[child].children) {
                forest.nodes[grandchild].parent = Some(n);
                kept.push(grandchild);
            }
        }
        forest.nodes[n].children = kept;
    }
    let mut pruned = Vec::with_capacity(roots.len());
    for root in roots {
        if forest.nodes[root].item.is_some() {
            pruned.push(root);
            continue;
        }
        let children = &forest.nodes[root].children;
        match children.len() {
            0 => {}
            1 => {
                let child = children[0];
                forest.nodes[child].parent = None;
                forest.nodes[root].children.clear();
                pruned.push(child);
            }
            _ => pruned.push(root),
        }
    }
    roots = pruned;
    // (4) Sort the root set by date (a dummy's children first, then by its first).
    for &root in &roots {
        let mut children = std::mem::take(&mut forest.nodes[root].children);
        if forest.nodes[root].item.is_none() {
            forest.sort_by_date(&mut children);
        }
        forest.nodes[root].children = children;
    }
    forest.sort_by_date(&mut roots);
    // (5) Gather roots that share a base subject.
    let subject_of = |forest: &Forest, node: usize| {
        forest
            .first_item(node)
            .map(|i| subject_key(items[i].keys))
            .unwrap_or_default()
    };
    let is_dummy = |forest: &Forest, node: usize| forest.nodes[node].item.is_none();
    let is_reply =
        |forest: &Forest, node: usize| forest.nodes[node].item.is_some_and(|i| items[i].keys.reply);
    // Table entries are positions in `roots`; a merged root's slot becomes `None`.
    let mut table: HashMap<String, usize> = HashMap::new();
    for (k, &root) in roots.iter().enumerate() {
        let subject = subject_of(&forest, root);
        if subject.is_empty() {
            continue;
        }
        match table.get(&subject) {
            None => {
                table.insert(subject, k);
            }
            Some(&p) => {
                let old = roots[p];
                let better = (is_dummy(&forest, root) && !is_dummy(&forest, old))
                    || (is_reply(&forest, old) && !is_reply(&forest, root));
                if better {
                    table.insert(subject, k);
                }
            }
        }
    }
    let mut slots: Vec<Option<usize>> = roots.iter().copied().map(Some).collect();
    for k in 0..slots.len() {
        let Some(root) = slots[k] else {
            continue;
        };
        let subject = subject_of(&forest, root);
        let Some(&p) = table.get(&subject).filter(|_| !subject.is_empty()) else {
            continue;
        };
        let Some(old) = slots[p].filter(|_| p != k) else {
            continue;
        };
        match (is_dummy(&forest, old), is_dummy(&forest, root)) {
            (true, true) => {
                for child in std::mem::take(&mut forest.nodes[root].children) {
                    forest.link(old, child);
                }
                slots[k] = None;
            }
            (true, false) => {
                forest.link(old, root);
                slots[k] = None;
            }
            (false, true) => {
                forest.link(root, old);
                slots[p] = None;
                table.insert(subject, k);
            }
            (false, false) if !is_reply(&forest, old) && is_reply(&forest, root) => {
                forest.link(old, root);
                slots[k] = None;
            }
            (false, false) => {
                let dummy = forest.add(None);
                forest.link(dummy, old);
                forest.link(dummy, root);
                slots[p] = Some(dummy);
                slots[k] = None;
            }
        }
    }
    let mut merged: Vec<usize> = slots.into_iter().flatten().collect();
    // (6) Sort every set of siblings by date: below the root there are no dummies, so
    // each node's children sort on their own; a root dummy sorts by its first child.
    for n in 0..forest.nodes.len() {
        let mut children = std::mem::take(&mut forest.nodes[n].children);
        forest.sort_by_date(&mut children);
        forest.nodes[n].children = children;
    }
    forest.sort_by_date(&mut merged);
    forest.encode(&merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(subject: &str, id: &str, refs: &[&str]) -> SortKeys {
        let (subject, reply) = crate::mail::sortkeys::base_subject(subject);
        SortKeys {
            subject,
            reply,
            message_id: (!id.is_empty()).then(|| id.to_string()),
            references: refs.iter().map(|r| r.to_string()).collect(),
            ..SortKeys::default()
        }
    }

    fn run(f: fn(&[Item]) -> String, messages: &[(i64, SortKeys)]) -> String {
        let items: Vec<Item> = messages
            .iter()
            .enumerate()
            .map(|(i, (sent, keys))| Item {
                number: i as u32 + 1,
                sent: *sent,
                keys,
            })
            .collect();
        let line = f(&items);
        assert!(line.ends_with("\r\n"));
        line.trim_start_matches("* THREAD").trim().to_string()
    }

    #[test]
    fn ordered_subject_groups_by_base_subject() {
        let messages = [
            (10, keys("b", "", &[])),
            (5, keys("Re: a", "", &[])),
            (1, keys("a", "", &[])),
            (7, keys("A", "", &[])),
            (3, keys("c", "", &[])),
            (2, keys("re: b", "", &[])),
        ];
        assert_eq!(run(ordered_subject, &messages), "(3 (2)(4))(6 1)(5)");
        assert_eq!(run(ordered_subject, &[]), "");
    }

    #[test]
    fn references_link_chains_and_prune_dummies() {
        let messages = [
            (1, keys("hello", "a@x", &[])),
            (3, keys("Re: hello", "c@x", &["a@x", "b@x"])),
            (2, keys("Re: hello", "d@x", &["a@x"])),
            (4, keys("other", "e@x", &["missing@x"])),
            (5, keys("unrelated", "f@x", &["gone1@x"])),
            (6, keys("Re: unrelated", "g@x", &["gone2@x"])),
        ];
        // b@x is a dummy below a: its child 2 takes its place. 4's parent is a dummy with
        // one child at the root: promoted. 5 and 6 share a base subject, 6 a reply.
        assert_eq!(run(references, &messages), "(1 (3)(2))(4)(5 6)");
    }

    #[test]
    fn references_survive_loops_duplicates_and_depth() {
        let messages = [
            (1, keys("x", "a@x", &["b@x"])),
            (2, keys("x", "b@x", &["a@x"])),
            (3, keys("y", "a@x", &[])),
        ];
        // 1 hangs under b (2); 2's own reference to a would close a loop, so 2 stays a
        // root. The second a@x is a duplicate and stands alone.
        assert_eq!(run(references, &messages), "(2 1)(3)");
        let chain: Vec<(i64, SortKeys)> = (0..20_000)
            .map(|i| {
                let parent = format!("{}@x", i.max(1) - 1);
                let refs: Vec<&str> = if i == 0 {
                    vec![]
                } else {
                    vec![parent.as_str()]
                };
                (i as i64, keys("deep", &format!("{i}@x"), &refs))
            })
            .collect();
        let line = run(references, &chain);
        assert!(line.starts_with("(1 2 3 "), "{}", &line[..20]);
        assert!(line.ends_with(" 20000)"));
    }

    #[test]
    fn references_merge_equal_subjects_under_a_dummy() {
        let messages = [
            (1, keys("topic", "a@x", &[])),
            (2, keys("topic", "b@x", &[])),
            (3, keys("Re: topic", "c@x", &[])),
        ];
        assert_eq!(run(references, &messages), "((1)(2)(3))");
    }
}
