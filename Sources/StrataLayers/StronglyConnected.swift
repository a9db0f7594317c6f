/// Strongly connected components of a directed graph, each listed after the components it reaches.
public struct StronglyConnected {
    public private(set) var components: [[Int]] = []
    private var index = 0
    private var indices: [Int?]
    private var lowLinks: [Int]
    private var onStack: [Bool]
    private var stack: [Int] = []

    /// `edges[n]` are the nodes `n` points to; `order` is the order in which roots are tried.
    public init(edges: [[Int]], order: [Int]) {
        indices = Array(repeating: nil, count: edges.count)
        lowLinks = Array(repeating: 0, count: edges.count)
        onStack = Array(repeating: false, count: edges.count)
        for node in order where indices[node] == nil { visit(node, edges) }
    }

    /// Iterative, so a long dependency chain cannot exhaust the thread's stack.
    private mutating func visit(_ start: Int, _ edges: [[Int]]) {
        var work: [(node: Int, edge: Int)] = [(start, 0)]
        indices[start] = index; lowLinks[start] = index; index += 1
        stack.append(start); onStack[start] = true
        while let (node, edge) = work.last {
            if edge < edges[node].count {
                work[work.count - 1].edge += 1
                let next = edges[node][edge]
                if indices[next] == nil {
                    indices[next] = index; lowLinks[next] = index; index += 1
                    stack.append(next); onStack[next] = true
                    work.append((next, 0))
                } else if onStack[next] {
                    lowLinks[node] = min(lowLinks[node], indices[next]!)
                }
                continue
            }
            work.removeLast()
            if let parent = work.last?.node { lowLinks[parent] = min(lowLinks[parent], lowLinks[node]) }
            if lowLinks[node] == indices[node] {
                var component: [Int] = []
                while let top = stack.popLast() {
                    onStack[top] = false
                    component.append(top)
                    if top == node { break }
                }
                components.append(component)
            }
        }
    }
}
