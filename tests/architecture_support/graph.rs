//! Circles in a directed graph: its strongly connected components (Tarjan's algorithm).

use std::collections::{BTreeMap, BTreeSet};

/// A directed graph over names.
#[derive(Debug, Default, Clone)]
pub struct Graph {
    pub edges: BTreeMap<String, BTreeSet<String>>,
}

impl Graph {
    pub fn add(&mut self, from: &str, to: &str) {
        self.edges.entry(from.to_owned()).or_default().insert(to.to_owned());
        self.edges.entry(to.to_owned()).or_default();
    }

    pub fn has(&self, from: &str, to: &str) -> bool {
        self.edges.get(from).is_some_and(|t| t.contains(to))
    }

    /// Every circle: each component of two or more nodes that reach each other, sorted.
    pub fn circles(&self) -> Vec<Vec<String>> {
        let mut tarjan = Tarjan {
            graph: self,
            index: BTreeMap::new(),
            low: BTreeMap::new(),
            stack: Vec::new(),
            on_stack: BTreeSet::new(),
            components: Vec::new(),
        };
        for node in self.edges.keys() {
            if !tarjan.index.contains_key(node.as_str()) {
                tarjan.visit(node);
            }
        }
        let mut circles: Vec<Vec<String>> = tarjan.components.into_iter().filter(|c| c.len() > 1).collect();
        circles.iter_mut().for_each(|c| c.sort());
        circles.sort();
        circles
    }
}

struct Tarjan<'a> {
    graph: &'a Graph,
    index: BTreeMap<&'a str, usize>,
    low: BTreeMap<&'a str, usize>,
    stack: Vec<&'a str>,
    on_stack: BTreeSet<&'a str>,
    components: Vec<Vec<String>>,
}

impl<'a> Tarjan<'a> {
    fn visit(&mut self, node: &'a str) {
        let n = self.index.len();
        self.index.insert(node, n);
        self.low.insert(node, n);
        self.stack.push(node);
        self.on_stack.insert(node);
        for next in &self.graph.edges[node] {
            if !self.index.contains_key(next.as_str()) {
                self.visit(next);
                let low = self.low[node].min(self.low[next.as_str()]);
                self.low.insert(node, low);
            } else if self.on_stack.contains(next.as_str()) {
                let low = self.low[node].min(self.index[next.as_str()]);
                self.low.insert(node, low);
            }
        }
        if self.low[node] == self.index[node] {
            let mut component = Vec::new();
            while let Some(top) = self.stack.pop() {
                self.on_stack.remove(top);
                component.push(top.to_owned());
                if top == node {
                    break;
                }
            }
            self.components.push(component);
        }
    }
}
