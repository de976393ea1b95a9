//! The service dependency graph: which service has to be up before which.
//!
//! The graph takes plain `(service, [(dependency, kind)])` input rather than the stack model
//! so that it can be built and tested on its own, and so that the model is free to change
//! shape. Every relation that forces an order becomes an edge `service -> dependency`:
//! `depends_on`, `network_mode: service:X`, `ipc: service:X`, `pid: service:X`,
//! `volumes_from` and `links`.
//!
//! Orders are deterministic: whenever the graph leaves a choice, the service written
//! earlier in the file goes first, so `berth up` does the same thing in the same order on
//! every run and tests can compare exact sequences.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::{self, Write as _};

use indexmap::IndexSet;
use petgraph::graph::{DiGraph, EdgeReference, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction::{Incoming, Outgoing};

/// Why one service has to wait for another.
#[derive(Debug, Clone, PartialEq)]
pub enum EdgeKind {
    /// `depends_on`, with the long syntax's options (the short syntax means
    /// `service_started`, required, no restart).
    DependsOn {
        condition: Condition,
        /// `false`: Compose only warns when the dependency is missing or fails to start.
        required: bool,
        /// Restart this service when the dependency is updated.
        restart: bool,
    },
    /// `network_mode: service:X`: the network namespace must exist to be joined.
    NetworkMode,
    /// `ipc: service:X`.
    Ipc,
    /// `pid: service:X`.
    Pid,
    /// `volumes_from`: the volumes must exist to be mounted.
    VolumesFrom,
    /// `links`: legacy, but it still implies an order.
    Links,
}

impl EdgeKind {
    /// The stack-file key the edge came from, so messages point at what the user wrote.
    pub fn key(&self) -> &'static str {
        match self {
            EdgeKind::DependsOn { .. } => "depends_on",
            EdgeKind::NetworkMode => "network_mode",
            EdgeKind::Ipc => "ipc",
            EdgeKind::Pid => "pid",
            EdgeKind::VolumesFrom => "volumes_from",
            EdgeKind::Links => "links",
        }
    }
}

/// What "the dependency is ready" means for a `depends_on` edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// `service_started`: the container has been started.
    Started,
    /// `service_healthy`: its healthcheck passes.
    Healthy,
    /// `service_completed_successfully`: it ran to completion with exit status 0.
    CompletedSuccessfully,
}

impl Condition {
    /// The Compose spelling, used in messages and in the DOT output.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Started => "service_started",
            Condition::Healthy => "service_healthy",
            Condition::CompletedSuccessfully => "service_completed_successfully",
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a set of services cannot be ordered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// A service names a dependency that the stack does not define. Optional
    /// (`required: false`) `depends_on` edges never produce this: they are dropped and
    /// reported by [`ServiceGraph::warnings`], as Compose does.
    #[error("service {service:?} depends on undefined service {dependency:?} ({kind})")]
    UnknownService {
        service: String,
        dependency: String,
        /// The stack-file key of the edge (`depends_on`, `network_mode`, `links`…).
        kind: String,
    },
    /// The services cannot all start, each waiting on the next. `path` is the closed walk
    /// (first element repeated at the end, `[a, a]` for a self-loop), starting at the
    /// earliest service in file order that lies on any cycle, so the message is the same
    /// on every run.
    #[error("dependency cycle detected: {}", path.join(" -> "))]
    Cycle { path: Vec<String> },
    /// The same service name was given twice: the input comes from a YAML map so this is
    /// a caller bug, but silently merging two nodes would hide it.
    #[error("service {service:?} is defined more than once")]
    DuplicateService { service: String },
}

/// An optional (`required: false`) `depends_on` edge whose target is not defined. Compose
/// starts the service anyway and only warns; the caller decides how to show the warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedDependency {
    pub service: String,
    pub dependency: String,
}

impl fmt::Display for DroppedDependency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "service {:?} depends on undefined service {:?} (depends_on, required: false): ignored",
            self.service, self.dependency
        )
    }
}

/// The services of one stack and the edges between them, known to be acyclic.
#[derive(Debug, Clone)]
pub struct ServiceGraph {
    /// Edge `a -> b`: `a` needs `b`. Node `i` is `names[i]` (nodes are added in file order
    /// and never removed), so node indices double as file positions for tie-breaking.
    graph: DiGraph<(), EdgeKind>,
    names: IndexSet<String>,
    /// `wave[i]`: length of the longest dependency chain below service `i`, computed once
    /// while checking for cycles.
    wave: Vec<usize>,
    warnings: Vec<DroppedDependency>,
}

impl ServiceGraph {
    /// services in file order; each with its outgoing edges (dependency name, kind).
    ///
    /// Checks run in this order, so one stack always reports the same error: duplicate
    /// names, then undefined dependencies (first in file order), then cycles. O(V+E):
    /// the cycle check is Kahn's algorithm, which also yields the start waves; only when
    /// it fails does a strongly-connected-components pass run to name the cycle.
    pub fn build<I, S>(services: I) -> Result<Self, GraphError>
    where
        I: IntoIterator<Item = (S, Vec<(String, EdgeKind)>)>,
        S: Into<String>,
    {
        let services = services.into_iter();
        let mut names: IndexSet<String> = IndexSet::with_capacity(services.size_hint().0);
        // Edges can point forward in the file, so names are all known before resolving.
        let mut pending_edges = Vec::with_capacity(services.size_hint().0);
        for (name, edges) in services {
            let (index, added) = names.insert_full(name.into());
            if !added {
                return Err(GraphError::DuplicateService {
                    service: names[index].clone(),
                });
            }
            pending_edges.push(edges);
        }

        let edge_count = pending_edges.iter().map(Vec::len).sum();
        let mut graph = DiGraph::with_capacity(names.len(), edge_count);
        for _ in 0..names.len() {
            graph.add_node(());
        }
        let mut warnings = Vec::new();
        for (from, edges) in pending_edges.into_iter().enumerate() {
            for (dependency, kind) in edges {
                match names.get_index_of(&dependency) {
                    Some(to) => {
                        graph.add_edge(NodeIndex::new(from), NodeIndex::new(to), kind);
                    }
                    None if matches!(
                        kind,
                        EdgeKind::DependsOn {
                            required: false,
                            ..
                        }
                    ) =>
                    {
                        warnings.push(DroppedDependency {
                            service: names[from].clone(),
                            dependency,
                        });
                    }
                    None => {
                        return Err(GraphError::UnknownService {
                            service: names[from].clone(),
                            dependency,
                            kind: kind.key().to_owned(),
                        })
                    }
                }
            }
        }

        let mut this = ServiceGraph {
            graph,
            names,
            wave: Vec::new(),
            warnings,
        };
        this.wave = this.waves_or_cycle()?;
        Ok(this)
    }

    /// Dependencies declared on undefined services with `required: false`, dropped from
    /// the graph.
    pub fn warnings(&self) -> &[DroppedDependency] {
        &self.warnings
    }

    /// The service names in file order.
    pub fn services(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// Every service after all its dependencies; among the services whose dependencies
    /// are all placed, the earliest in the file goes next. This is the lexicographically
    /// smallest valid order by file position, so a stack without dependencies starts in
    /// file order and one edge moves as few services as possible.
    pub fn start_order(&self) -> Vec<&str> {
        self.start_order_nodes()
            .into_iter()
            .map(|node| self.name(node))
            .collect()
    }

    /// Wave `k` holds the services whose dependencies are all in waves `< k`: the services
    /// of one wave can start in parallel once the previous wave is ready. Each service is
    /// in the earliest wave it can be; within a wave, services are in file order.
    pub fn start_waves(&self) -> Vec<Vec<&str>> {
        let count = self.wave.iter().max().map_or(0, |&w| w + 1);
        let mut waves = vec![Vec::new(); count];
        for (node, &wave) in self.wave.iter().enumerate() {
            waves[wave].push(self.name(node));
        }
        waves
    }

    /// The reverse of [`start_order`](Self::start_order): dependants stop before what
    /// they depend on.
    pub fn stop_order(&self) -> Vec<&str> {
        let mut order = self.start_order();
        order.reverse();
        order
    }

    /// The direct dependencies of `service`, in declaration order (one entry per edge, so a
    /// service reached by `depends_on` and `links` appears twice). Empty for an unknown
    /// service.
    pub fn dependencies(&self, service: &str) -> Vec<(&str, &EdgeKind)> {
        let Some(node) = self.names.get_index_of(service) else {
            return Vec::new();
        };
        self.outgoing(node)
            .into_iter()
            .map(|edge| (self.name(edge.target().index()), edge.weight()))
            .collect()
    }

    /// The services that directly depend on `service`, once each, in file order. Empty for
    /// an unknown service.
    pub fn dependents(&self, service: &str) -> Vec<&str> {
        let Some(node) = self.names.get_index_of(service) else {
            return Vec::new();
        };
        let mut sources: Vec<usize> = self
            .graph
            .edges_directed(NodeIndex::new(node), Incoming)
            .map(|edge| edge.source().index())
            .collect();
        sources.sort_unstable();
        sources.dedup();
        sources.into_iter().map(|i| self.name(i)).collect()
    }

    /// The given services plus everything they need, transitively, in start order: what
    /// `berth up web` has to bring up. Names not in the graph are ignored; the CLI checks
    /// service names against the stack (with suggestions) before it gets here.
    pub fn with_dependencies(&self, services: &[&str]) -> Vec<&str> {
        let mut wanted = vec![false; self.names.len()];
        let mut stack: Vec<usize> = services
            .iter()
            .filter_map(|s| self.names.get_index_of(*s))
            .collect();
        while let Some(node) = stack.pop() {
            if std::mem::replace(&mut wanted[node], true) {
                continue;
            }
            stack.extend(
                self.graph
                    .neighbors_directed(NodeIndex::new(node), Outgoing)
                    .map(NodeIndex::index)
                    .filter(|&dep| !wanted[dep]),
            );
        }
        self.start_order_nodes()
            .into_iter()
            .filter(|&node| wanted[node])
            .map(|node| self.name(node))
            .collect()
    }

    /// Graphviz DOT, named `services`: see [`to_dot_named`](Self::to_dot_named).
    pub fn to_dot(&self) -> String {
        self.to_dot_named("services")
    }

    /// Graphviz DOT with the given graph name (the project name, typically). Every service
    /// is listed as a node in file order (so services without edges show up), then every
    /// edge in declaration order, `depends_on` labelled with its condition, optional ones
    /// dashed, others labelled with their stack-file key. The output depends only on the
    /// input, so it can be diffed and golden-tested.
    pub fn to_dot_named(&self, name: &str) -> String {
        let mut dot = format!("digraph {} {{\n", dot_quote(name));
        for service in &self.names {
            let _ = writeln!(dot, "  {};", dot_quote(service));
        }
        for edge in self.graph.edge_references() {
            let from = dot_quote(self.name(edge.source().index()));
            let to = dot_quote(self.name(edge.target().index()));
            let attrs = match edge.weight() {
                EdgeKind::DependsOn {
                    condition,
                    required,
                    restart,
                } => {
                    let mut label = condition.as_str().to_owned();
                    if *restart {
                        label.push_str(", restart");
                    }
                    let mut attrs = format!("label={}", dot_quote(&label));
                    if !required {
                        attrs.push_str(", style=dashed");
                    }
                    attrs
                }
                other => format!("label={}", dot_quote(other.key())),
            };
            let _ = writeln!(dot, "  {from} -> {to} [{attrs}];");
        }
        dot.push_str("}\n");
        dot
    }

    /// Kahn's algorithm with a min-heap on file position as the ready set.
    fn start_order_nodes(&self) -> Vec<usize> {
        let mut missing = self.out_degrees();
        let mut ready: BinaryHeap<Reverse<usize>> = missing
            .iter()
            .enumerate()
            .filter(|(_, &m)| m == 0)
            .map(|(i, _)| Reverse(i))
            .collect();
        let mut order = Vec::with_capacity(self.names.len());
        while let Some(Reverse(node)) = ready.pop() {
            order.push(node);
            for edge in self.graph.edges_directed(NodeIndex::new(node), Incoming) {
                let dependent = edge.source().index();
                missing[dependent] -= 1;
                if missing[dependent] == 0 {
                    ready.push(Reverse(dependent));
                }
            }
        }
        debug_assert_eq!(order.len(), self.names.len(), "graph was checked acyclic");
        order
    }

    fn name(&self, node: usize) -> &str {
        &self.names[node]
    }

    /// Outgoing edges in declaration order. petgraph lists a node's edges newest first;
    /// edge indices follow insertion (file) order, so sorting by them restores it.
    fn outgoing(&self, node: usize) -> Vec<EdgeReference<'_, EdgeKind>> {
        let mut edges: Vec<_> = self
            .graph
            .edges_directed(NodeIndex::new(node), Outgoing)
            .collect();
        edges.sort_unstable_by_key(|edge| edge.id());
        edges
    }

    /// Per service, how many edges still have to be satisfied before it can start.
    fn out_degrees(&self) -> Vec<usize> {
        let mut degrees = vec![0; self.names.len()];
        for edge in self.graph.raw_edges() {
            degrees[edge.source().index()] += 1;
        }
        degrees
    }

    /// Kahn's algorithm: the wave of every service, or the cycle that stops it.
    fn waves_or_cycle(&self) -> Result<Vec<usize>, GraphError> {
        let mut missing = self.out_degrees();
        let mut wave = vec![0; self.names.len()];
        let mut queue: Vec<usize> = (0..missing.len()).filter(|&i| missing[i] == 0).collect();
        let mut head = 0;
        while let Some(&node) = queue.get(head) {
            head += 1;
            for edge in self.graph.edges_directed(NodeIndex::new(node), Incoming) {
                let dependent = edge.source().index();
                wave[dependent] = wave[dependent].max(wave[node] + 1);
                missing[dependent] -= 1;
                if missing[dependent] == 0 {
                    queue.push(dependent);
                }
            }
        }
        if queue.len() == self.names.len() {
            Ok(wave)
        } else {
            Err(GraphError::Cycle {
                path: self.find_cycle(),
            })
        }
    }

    /// The shortest cycle through the earliest service (in file order) that is on any
    /// cycle. Only called once Kahn's algorithm has proved there is one.
    fn find_cycle(&self) -> Vec<String> {
        let mut component = vec![usize::MAX; self.names.len()];
        let mut start = usize::MAX;
        for (id, scc) in petgraph::algo::tarjan_scc(&self.graph).iter().enumerate() {
            let cyclic = scc.len() > 1 || self.graph.contains_edge(scc[0], scc[0]);
            for node in scc {
                component[node.index()] = id;
                if cyclic {
                    start = start.min(node.index());
                }
            }
        }
        assert!(start != usize::MAX, "find_cycle called on an acyclic graph");

        // Breadth-first from `start` inside its component, edges in declaration order,
        // until an edge leads back to `start`.
        let mut parent = vec![usize::MAX; self.names.len()];
        let mut queue = vec![start];
        let mut head = 0;
        while let Some(&node) = queue.get(head) {
            head += 1;
            for edge in self.outgoing(node) {
                let next = edge.target().index();
                if next == start {
                    let mut path = vec![self.names[start].clone()];
                    let mut walk = node;
                    let tail = path.len();
                    while walk != start {
                        path.push(self.names[walk].clone());
                        walk = parent[walk];
                    }
                    path[tail..].reverse();
                    path.push(self.names[start].clone());
                    return path;
                }
                if component[next] == component[start] && parent[next] == usize::MAX {
                    parent[next] = node;
                    queue.push(next);
                }
            }
        }
        unreachable!("a strongly connected component with a cycle leads back to its start")
    }
}

/// A DOT double-quoted ID. Quoting every name keeps IDs with `-`, `.` or digits legal;
/// escaping backslashes keeps the layout engine from reading `\n`, `\l`… as line breaks.
fn dot_quote(s: &str) -> String {
    let mut quoted = String::with_capacity(s.len() + 2);
    quoted.push('"');
    for c in s.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(name: &str) -> (String, EdgeKind) {
        dep_on(name, Condition::Started)
    }

    fn dep_on(name: &str, condition: Condition) -> (String, EdgeKind) {
        (
            name.to_owned(),
            EdgeKind::DependsOn {
                condition,
                required: true,
                restart: false,
            },
        )
    }

    fn optional(name: &str) -> (String, EdgeKind) {
        (
            name.to_owned(),
            EdgeKind::DependsOn {
                condition: Condition::Started,
                required: false,
                restart: false,
            },
        )
    }

    fn graph(services: &[(&str, Vec<(String, EdgeKind)>)]) -> ServiceGraph {
        ServiceGraph::build(services.iter().cloned()).expect("valid graph")
    }

    fn error(services: &[(&str, Vec<(String, EdgeKind)>)]) -> GraphError {
        ServiceGraph::build(services.iter().cloned()).expect_err("invalid graph")
    }

    /// Every service after its dependencies, stop order the exact reverse, every wave
    /// minimal, and all services present exactly once.
    fn assert_consistent(g: &ServiceGraph) {
        let order = g.start_order();
        let position: std::collections::HashMap<&str, usize> =
            order.iter().enumerate().map(|(i, s)| (*s, i)).collect();
        assert_eq!(order.len(), g.names.len());
        assert_eq!(position.len(), g.names.len(), "duplicates in {order:?}");
        for service in g.services() {
            for (dependency, _) in g.dependencies(service) {
                assert!(
                    position[dependency] < position[service],
                    "{service} starts before its dependency {dependency}"
                );
            }
        }
        let mut stop = g.stop_order();
        stop.reverse();
        assert_eq!(stop, order);

        let waves = g.start_waves();
        let wave_of: std::collections::HashMap<&str, usize> = waves
            .iter()
            .enumerate()
            .flat_map(|(k, wave)| wave.iter().map(move |s| (*s, k)))
            .collect();
        assert_eq!(wave_of.len(), g.names.len());
        for service in g.services() {
            let expected = g
                .dependencies(service)
                .iter()
                .map(|(d, _)| wave_of[d] + 1)
                .max()
                .unwrap_or(0);
            assert_eq!(wave_of[service], expected, "wave of {service}");
        }
        for wave in &waves {
            assert!(!wave.is_empty());
            let mut sorted = wave.clone();
            sorted.sort_by_key(|s| g.names.get_index_of(*s));
            assert_eq!(&sorted, wave, "wave not in file order");
        }
    }

    #[test]
    fn chain() {
        let g = graph(&[
            ("web", vec![dep("api")]),
            ("api", vec![dep("db")]),
            ("db", vec![]),
        ]);
        assert_eq!(g.start_order(), ["db", "api", "web"]);
        assert_eq!(g.stop_order(), ["web", "api", "db"]);
        assert_eq!(g.start_waves(), vec![vec!["db"], vec!["api"], vec!["web"]]);
        assert_eq!(g.with_dependencies(&["api"]), ["db", "api"]);
        assert_eq!(g.with_dependencies(&["db"]), ["db"]);
        assert!(g.warnings().is_empty());
        assert_consistent(&g);
    }

    #[test]
    fn diamond() {
        let g = graph(&[
            ("web", vec![dep("auth"), dep("cache")]),
            ("auth", vec![dep_on("db", Condition::Healthy)]),
            ("cache", vec![dep("db")]),
            ("db", vec![]),
        ]);
        assert_eq!(g.start_order(), ["db", "auth", "cache", "web"]);
        assert_eq!(
            g.start_waves(),
            vec![vec!["db"], vec!["auth", "cache"], vec!["web"]]
        );
        assert_eq!(g.dependents("db"), ["auth", "cache"]);
        assert_eq!(g.dependents("web"), Vec::<&str>::new());
        assert_eq!(
            g.dependencies("web")
                .into_iter()
                .map(|(d, _)| d)
                .collect::<Vec<_>>(),
            ["auth", "cache"]
        );
        assert_eq!(
            g.dependencies("auth"),
            [(
                "db",
                &EdgeKind::DependsOn {
                    condition: Condition::Healthy,
                    required: true,
                    restart: false
                }
            )]
        );
        assert_eq!(g.with_dependencies(&["cache"]), ["db", "cache"]);
        assert_eq!(
            g.with_dependencies(&["web"]),
            ["db", "auth", "cache", "web"]
        );
        assert_consistent(&g);
    }

    #[test]
    fn fan_in() {
        // One service needing many: they all start together, it starts last.
        let g = graph(&[
            ("proxy", vec![dep("a"), dep("b"), dep("c"), dep("d")]),
            ("d", vec![]),
            ("c", vec![]),
            ("b", vec![]),
            ("a", vec![]),
        ]);
        assert_eq!(g.start_order(), ["d", "c", "b", "a", "proxy"]);
        assert_eq!(
            g.start_waves(),
            vec![vec!["d", "c", "b", "a"], vec!["proxy"]]
        );
        assert_eq!(g.dependents("a"), ["proxy"]);
        assert_eq!(g.with_dependencies(&["a", "c"]), ["c", "a"]);
        assert_consistent(&g);
    }

    #[test]
    fn fan_out_dependents_in_file_order() {
        let g = graph(&[
            ("z", vec![dep("db")]),
            ("y", vec![dep("db"), (String::from("db"), EdgeKind::Links)]),
            ("db", vec![]),
            ("x", vec![dep("db")]),
        ]);
        assert_eq!(g.dependents("db"), ["z", "y", "x"]);
        assert_eq!(g.dependencies("y").len(), 2, "one entry per edge");
        assert_eq!(g.start_order(), ["db", "z", "y", "x"]);
        assert_consistent(&g);
    }

    #[test]
    fn independent_branches_share_waves() {
        let g = graph(&[
            ("front", vec![dep("front-api")]),
            ("front-api", vec![dep("front-db")]),
            ("front-db", vec![]),
            ("back", vec![dep("back-db")]),
            ("back-db", vec![]),
            ("lonely", vec![]),
        ]);
        assert_eq!(
            g.start_waves(),
            vec![
                vec!["front-db", "back-db", "lonely"],
                vec!["front-api", "back"],
                vec!["front"],
            ]
        );
        // Earliest ready service in file order first: the first branch is done before
        // the second starts, `lonely` waits its turn.
        assert_eq!(
            g.start_order(),
            [
                "front-db",
                "front-api",
                "front",
                "back-db",
                "back",
                "lonely"
            ]
        );
        assert_consistent(&g);
    }

    #[test]
    fn no_edges_is_file_order() {
        let g = graph(&[("c", vec![]), ("a", vec![]), ("b", vec![])]);
        assert_eq!(g.start_order(), ["c", "a", "b"]);
        assert_eq!(g.stop_order(), ["b", "a", "c"]);
        assert_eq!(g.start_waves(), vec![vec!["c", "a", "b"]]);
        assert_eq!(g.services().collect::<Vec<_>>(), ["c", "a", "b"]);
    }

    #[test]
    fn empty_graph() {
        let g = graph(&[]);
        assert!(g.start_order().is_empty());
        assert!(g.start_waves().is_empty());
        assert_eq!(g.to_dot(), "digraph \"services\" {\n}\n");
    }

    #[test]
    fn non_depends_on_edges_order_too() {
        let g = graph(&[
            (
                "sidecar",
                vec![(String::from("app"), EdgeKind::NetworkMode)],
            ),
            ("debug", vec![(String::from("app"), EdgeKind::Pid)]),
            ("shm", vec![(String::from("app"), EdgeKind::Ipc)]),
            ("backup", vec![(String::from("app"), EdgeKind::VolumesFrom)]),
            ("old", vec![(String::from("app"), EdgeKind::Links)]),
            ("app", vec![]),
        ]);
        assert_eq!(g.start_order()[0], "app");
        assert_eq!(g.dependents("app").len(), 5);
        assert_consistent(&g);
    }

    #[test]
    fn unknown_name_queries_are_empty() {
        let g = graph(&[("a", vec![])]);
        assert!(g.dependencies("nope").is_empty());
        assert!(g.dependents("nope").is_empty());
        assert_eq!(g.with_dependencies(&["nope", "a"]), ["a"]);
    }

    #[test]
    fn self_loop() {
        let err = error(&[("ok", vec![]), ("a", vec![dep("a")])]);
        assert_eq!(
            err,
            GraphError::Cycle {
                path: vec!["a".into(), "a".into()]
            }
        );
        assert_eq!(err.to_string(), "dependency cycle detected: a -> a");
    }

    #[test]
    fn two_cycle() {
        let err = error(&[("a", vec![dep("b")]), ("b", vec![dep("a")])]);
        assert_eq!(err.to_string(), "dependency cycle detected: a -> b -> a");
    }

    #[test]
    fn three_cycle_starts_at_first_service_in_file_order() {
        // Written so that a naive DFS from `x` would enter the cycle at `c`.
        let err = error(&[
            ("x", vec![dep("c")]),
            ("b", vec![dep("c")]),
            ("c", vec![(String::from("a"), EdgeKind::VolumesFrom)]),
            ("a", vec![(String::from("b"), EdgeKind::Links)]),
        ]);
        assert_eq!(
            err.to_string(),
            "dependency cycle detected: b -> c -> a -> b"
        );
        assert_eq!(
            err,
            GraphError::Cycle {
                path: ["b", "c", "a", "b"].map(String::from).to_vec()
            }
        );
    }

    #[test]
    fn cycle_downstream_of_first_service() {
        // `web` is not on the cycle, only depends on it: the message names the cycle.
        let err = error(&[
            ("web", vec![dep("api")]),
            ("api", vec![dep("db")]),
            ("db", vec![dep("migrate")]),
            ("migrate", vec![dep("api")]),
        ]);
        assert_eq!(
            err.to_string(),
            "dependency cycle detected: api -> db -> migrate -> api"
        );
    }

    #[test]
    fn cycle_reported_is_shortest_through_its_start() {
        let err = error(&[
            ("a", vec![dep("b"), dep("c")]),
            ("b", vec![dep("d")]),
            ("c", vec![dep("a")]),
            ("d", vec![dep("a")]),
        ]);
        assert_eq!(err.to_string(), "dependency cycle detected: a -> c -> a");
    }

    #[test]
    fn unknown_service() {
        let err = error(&[("web", vec![dep_on("db", Condition::Healthy)])]);
        assert_eq!(
            err,
            GraphError::UnknownService {
                service: "web".into(),
                dependency: "db".into(),
                kind: "depends_on".into()
            }
        );
        assert_eq!(
            err.to_string(),
            r#"service "web" depends on undefined service "db" (depends_on)"#
        );
        let err = error(&[
            ("web", vec![]),
            ("vpn", vec![(String::from("gw"), EdgeKind::NetworkMode)]),
        ]);
        assert_eq!(
            err.to_string(),
            r#"service "vpn" depends on undefined service "gw" (network_mode)"#
        );
    }

    #[test]
    fn unknown_service_wins_over_cycle() {
        let err = error(&[("a", vec![dep("a")]), ("b", vec![dep("ghost")])]);
        assert!(matches!(err, GraphError::UnknownService { .. }), "{err}");
    }

    #[test]
    fn optional_unknown_dependency_is_dropped_with_a_warning() {
        let g = graph(&[
            ("web", vec![optional("metrics"), dep("db")]),
            ("db", vec![optional("db-replica")]),
        ]);
        assert_eq!(g.start_order(), ["db", "web"]);
        assert_eq!(
            g.warnings(),
            [
                DroppedDependency {
                    service: "web".into(),
                    dependency: "metrics".into()
                },
                DroppedDependency {
                    service: "db".into(),
                    dependency: "db-replica".into()
                },
            ]
        );
        assert_eq!(
            g.warnings()[0].to_string(),
            r#"service "web" depends on undefined service "metrics" (depends_on, required: false): ignored"#
        );
        assert_eq!(g.dependencies("web").len(), 1);
        // A present optional dependency still orders.
        let g = graph(&[("web", vec![optional("db")]), ("db", vec![])]);
        assert_eq!(g.start_order(), ["db", "web"]);
        assert!(g.warnings().is_empty());
    }

    #[test]
    fn duplicate_service() {
        let err = error(&[("a", vec![]), ("a", vec![])]);
        assert_eq!(err.to_string(), r#"service "a" is defined more than once"#);
    }

    #[test]
    fn dot_golden() {
        let g = graph(&[
            (
                "web",
                vec![
                    dep_on("db", Condition::Healthy),
                    (
                        "cache".into(),
                        EdgeKind::DependsOn {
                            condition: Condition::Started,
                            required: false,
                            restart: true,
                        },
                    ),
                ],
            ),
            (
                "migrate",
                vec![dep_on("db", Condition::CompletedSuccessfully)],
            ),
            ("vpn", vec![("web".into(), EdgeKind::NetworkMode)]),
            ("db", vec![]),
            ("cache", vec![("db".into(), EdgeKind::Links)]),
            (r#"we"ird\name"#, vec![("db".into(), EdgeKind::VolumesFrom)]),
        ]);
        let expected = r#"digraph "services" {
  "web";
  "migrate";
  "vpn";
  "db";
  "cache";
  "we\"ird\\name";
  "web" -> "db" [label="service_healthy"];
  "web" -> "cache" [label="service_started, restart", style=dashed];
  "migrate" -> "db" [label="service_completed_successfully"];
  "vpn" -> "web" [label="network_mode"];
  "cache" -> "db" [label="links"];
  "we\"ird\\name" -> "db" [label="volumes_from"];
}
"#;
        assert_eq!(g.to_dot(), expected);
        assert!(g
            .to_dot_named("my\"proj")
            .starts_with("digraph \"my\\\"proj\" {\n"));
    }

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// `n` services: a chain `s0 <- s1 <- …`, every service also needing a few random
    /// earlier ones and the hub, a gateway needing every tenth service (fan-in), all in a
    /// shuffled file order so that most edges point forward in the file.
    fn generated(n: usize, seed: u64) -> Vec<(String, Vec<(String, EdgeKind)>)> {
        let mut rng = XorShift(seed);
        let name = |i: usize| format!("s{i}");
        let mut services: Vec<(String, Vec<(String, EdgeKind)>)> = vec![("hub".into(), vec![])];
        for i in 0..n {
            let mut edges = vec![dep("hub")];
            if i > 0 {
                edges.push(dep(&name(i - 1)));
                for _ in 0..rng.below(4) {
                    let target = name(rng.below(i));
                    edges.push((target, EdgeKind::Links));
                }
            }
            services.push((name(i), edges));
        }
        services.push((
            "gateway".into(),
            (0..n).step_by(10).map(|i| dep(&name(i))).collect(),
        ));
        for i in (1..services.len()).rev() {
            let j = rng.below(i + 1);
            services.swap(i, j);
        }
        services
    }

    #[test]
    fn thousand_services() {
        let services = generated(1000, 0x9e37_79b9_7f4a_7c15);
        let g = ServiceGraph::build(services.clone()).expect("acyclic");
        assert_consistent(&g);
        let order = g.start_order();
        assert_eq!(order[0], "hub");
        assert!(["s999", "gateway"].contains(&order[order.len() - 1]));
        // The chain forces one service per wave: hub, then s0 … s999.
        assert_eq!(g.start_waves().len(), 1001);
        assert_eq!(g.with_dependencies(&["s10"]).len(), 12);

        // Closing the chain into a loop is found and printed from its first service.
        let mut cyclic = services;
        let first = cyclic
            .iter()
            .position(|(name, _)| name.starts_with('s'))
            .unwrap();
        let (ref first_name, _) = cyclic[first].clone();
        let index: usize = first_name[1..].parse().unwrap();
        cyclic
            .iter_mut()
            .find(|(name, _)| *name == "s0")
            .unwrap()
            .1
            .push(dep("s999"));
        let err = ServiceGraph::build(cyclic).expect_err("cycle");
        let GraphError::Cycle { path } = &err else {
            panic!("{err}")
        };
        assert_eq!(path.first(), Some(first_name));
        assert_eq!(path.last(), Some(first_name));
        assert!(
            path.len() <= 1001,
            "cycle through s{index} is at most the chain"
        );
        for pair in path.windows(2) {
            let g_edge = g.dependencies(&pair[0]).iter().any(|(d, _)| *d == pair[1]);
            assert!(g_edge || (pair[0] == "s0" && pair[1] == "s999"), "{pair:?}");
        }
    }

    #[test]
    fn build_is_fast_enough() {
        // Loose bound (debug build, shared CI cores): the release target is well under 2 ms.
        let services = generated(5000, 7);
        let started = std::time::Instant::now();
        let g = ServiceGraph::build(services).expect("acyclic");
        let elapsed = started.elapsed();
        assert_eq!(g.start_order().len(), 5002);
        assert!(elapsed.as_millis() < 500, "build took {elapsed:?}");
    }
}
