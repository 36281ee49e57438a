namespace MitmCache.Benchmarks.Infrastructure;

/// <summary>Requests the upstream registry logged while one measured piece of work ran, by method.</summary>
internal sealed record UpstreamRequests(int Get, int Head, int Other)
{
    /// <summary>Counts the access-log entries, leaving out the fixture's own sync markers.</summary>
    public static UpstreamRequests From(IEnumerable<(string Method, string Target, int Status)> log)
    {
        int get = 0, head = 0, other = 0;
        foreach (var (method, target, _) in log.Where(e => !e.Target.Contains("mitmcache-test-marker", StringComparison.Ordinal)))
        {
            _ = method switch
            {
                "GET" => get++,
                "HEAD" => head++,
                _ => other++,
            };
        }

        return new UpstreamRequests(get, head, other);
    }

    public override string ToString() => $"{Get} GET + {Head} HEAD" + (Other > 0 ? $" + {Other} other" : "");
}
