using System.Net;
using MitmCache.Configuration;

namespace MitmCache.Upstream;

/// <summary>One way to an upstream: through a parent of the tier (its index in <c>--upstream-proxy</c>), or direct.</summary>
internal readonly record struct UpstreamRoute(int Parent)
{
    public static UpstreamRoute Direct { get; } = new(-1);

    public bool IsDirect => Parent < 0;
}

/// <summary>
/// The cluster tier as a child sees it (docs/cluster.md): its parents, each with its health, and for every request
/// the order in which they are tried. A key ranks the parents by <see cref="Rendezvous"/> hashing: a blob by its
/// digest (each digest has one home, so the cluster fetches it from upstream once), a manifest, tag list, token or
/// ping by repository (one parent resolves a repository's tags and holds the token it minted offline). Requests
/// without a key (blind tunnels, pushes, redirect hops) take the parents in the operator's order. Parents known down
/// are skipped without being dialled, and a parent whose <c>/readyz</c> says it is degraded itself (its cache
/// storage failing, say: not an upstream it finds down, which its peers would find down too) goes after those that
/// are not; direct comes last unless <c>--no-direct-fallback</c>.
/// <para>Per-parent state is an <see cref="UpstreamState"/> of <see cref="UpstreamHealth"/>, which probes a down
/// parent's <c>/readyz</c> and shows it on <c>/readyz</c> and <c>/metrics</c>.</para>
/// </summary>
internal sealed class ParentTier
{
    /// <summary>
    /// On a token request: the registries whose challenge named its realm. A parent learns a realm only from a
    /// registry's own challenge, and the ping that brought it went to the ping's owner, not necessarily to the
    /// repository's, which gets the token request: <see cref="TierHandler"/> sends that parent the registry's ping first.
    /// </summary>
    public static readonly HttpRequestOptionsKey<IReadOnlyList<string>> TokenRegistries = new("MitmCache.TokenRegistries");

    /// <summary>A parent's own answers carry no <see cref="RelayedHeader"/>; answers it relays from an upstream do.</summary>
    public const string RelayedHeader = "X-MitmCache-Relayed";

    private readonly string[] _members;

    public ParentTier(ProxySettings settings)
    {
        Parents = settings.UpstreamProxies;
        DirectFallback = settings.DirectFallback;
        InstanceName = settings.InstanceName;
        UpstreamTimeout = settings.UpstreamTimeout;
        ConnectTimeout = settings.ConnectTimeout;
        _members = [.. Parents.Select(p => p.Authority.ToLowerInvariant())];
        var now = TimeProvider.System.GetTimestamp();
        States = [.. Parents.Select(p => new UpstreamState(p.Authority, p.IdnHost, p.Port, UpstreamReach.Parent, now, TimeProvider.System.GetUtcNow()))];
        Counts = [.. Parents.Select(_ => new ParentCounts())];
    }

    public IReadOnlyList<Uri> Parents { get; }

    public bool Enabled => Parents.Count > 0;

    public bool DirectFallback { get; }

    public string InstanceName { get; }

    /// <summary><c>--upstream-timeout</c>: how long a blob body from a parent may stall before it is resumed from the next.</summary>
    public TimeSpan UpstreamTimeout { get; }

    /// <summary><c>--connect-timeout</c>: a blob body from a parent that waits a quarter of it has the parent checked.</summary>
    public TimeSpan ConnectTimeout { get; }

    /// <summary>Each parent's health, in <see cref="Parents"/> order.</summary>
    public IReadOnlyList<UpstreamState> States { get; }

    /// <summary>Each parent's requests, failures and bytes, in <see cref="Parents"/> order.</summary>
    public IReadOnlyList<ParentCounts> Counts { get; }

    /// <summary>Set once by <see cref="UpstreamHealth"/>: where a parent's failure is reported (a probe follows).</summary>
    public UpstreamHealth? Health { get; set; }

    /// <summary>
    /// The <c>Via</c> the request being served arrived with (set by the request's entry, flowing into the fetches it
    /// starts), so a request passed on to a parent carries every hop before this one and a loop is seen at its second turn.
    /// </summary>
    public static AsyncLocal<string?> ArrivedVia { get; } = new();

    /// <summary>
    /// The routes for a request, best first: the parents ranked for <paramref name="key"/> (the operator's order
    /// without one), those known down left out, those degraded after the others, then direct if allowed. Empty when
    /// every parent is down and direct is off.
    /// </summary>
    public IReadOnlyList<UpstreamRoute> Routes(string? key)
    {
        var order = key is null ? Enumerable.Range(0, _members.Length).ToArray() : Rendezvous.Rank(_members, key);
        var routes = new List<UpstreamRoute>(_members.Length + 1);
        routes.AddRange(order.Where(i => !States[i].IsDown && States[i].Degraded is null).Select(i => new UpstreamRoute(i)));
        routes.AddRange(order.Where(i => !States[i].IsDown && States[i].Degraded is not null).Select(i => new UpstreamRoute(i)));
        if (DirectFallback || !Enabled)
        {
            routes.Add(UpstreamRoute.Direct);
        }

        return routes;
    }

    /// <summary>The owner of a key among all parents, up or down: what a test or an operator asks.</summary>
    public Uri Owner(string key) => Parents[Rendezvous.Rank(_members, key)[0]];

    /// <summary>What a request fails with when no route is left: the parents and why each is out.</summary>
    public UpstreamConnectException NoRoute(string target, IEnumerable<string> failures) => new(ConnectError.Down,
        $"no way to {target}: " + string.Join("; ", failures.Distinct().DefaultIfEmpty("no parent answered")) +
        (DirectFallback ? "" : "; direct connections are off (--no-direct-fallback)"));

    /// <summary>Why a parent that is known down is not asked, for <see cref="NoRoute"/>.</summary>
    public IEnumerable<string> DownParents() => States.Where(s => s.IsDown).Select(s => $"parent {s.Authority} is down ({s.Reason})");

    public void ReportFailure(int parent, string reason, bool network) => Health?.ReportFailure(States[parent], reason, network);

    /// <summary>
    /// What a parent's <c>/readyz</c> body says is degraded in the parent itself, or null: its <c>degraded:</c> lines
    /// but those about upstreams and parents it finds down (every parent would find those; ranking it last for them
    /// would only send its keys to parents that do not hold them).
    /// </summary>
    public static string? OwnDegradation(string readyBody) => readyBody.Split('\n')
        .Select(line => line.Trim())
        .Where(line => line.StartsWith("degraded: ", StringComparison.Ordinal))
        .Select(line => line["degraded: ".Length..])
        .FirstOrDefault(line => !line.StartsWith("upstream ", StringComparison.Ordinal) && !line.StartsWith("parent ", StringComparison.Ordinal));

    public void ReportSuccess(int parent) => Health?.ReportAnswer(States[parent], HttpStatusCode.OK);

    /// <summary>
    /// The key a request ranks the parents by: <c>blob DIGEST</c> for a blob GET or HEAD, <c>repo NAME</c> for a
    /// manifest or tag list read and for a token request's first repository scope, <c>ping HOST</c> for <c>/v2/</c>;
    /// null for everything else (pushes, uploads, redirect targets), which follows the operator's order.
    /// </summary>
    public static string? KeyOf(HttpRequestMessage request)
    {
        var uri = request.RequestUri!;
        var path = uri.AbsolutePath;
        var read = request.Method == HttpMethod.Get || request.Method == HttpMethod.Head;
        if (!read)
        {
            return null;
        }

        if (path is "/v2/" or "/v2")
        {
            return "ping " + uri.Authority.ToLowerInvariant();
        }

        if (ScopeRepository(uri.Query) is { } scoped)
        {
            return "repo " + scoped;
        }

        if (!path.StartsWith("/v2/", StringComparison.Ordinal))
        {
            return null;
        }

        var blobs = path.LastIndexOf("/blobs/", StringComparison.Ordinal);
        if (blobs > 4 && !path.Contains("/blobs/uploads", StringComparison.Ordinal))
        {
            return "blob " + path[(blobs + "/blobs/".Length)..];
        }

        var manifests = path.LastIndexOf("/manifests/", StringComparison.Ordinal);
        if (manifests > 4)
        {
            return "repo " + path[4..manifests];
        }

        return path.EndsWith("/tags/list", StringComparison.Ordinal) ? "repo " + path[4..^"/tags/list".Length] : null;
    }

    /// <summary>The repository of a token request's first <c>scope=repository:NAME:ACTIONS</c>, or null.</summary>
    private static string? ScopeRepository(string query)
    {
        foreach (var pair in query.TrimStart('?').Split('&'))
        {
            if (pair.StartsWith("scope=", StringComparison.Ordinal))
            {
                var scope = Uri.UnescapeDataString(pair[6..].Replace('+', ' '));
                var parts = scope.Split(':');
                if (parts.Length >= 3 && parts[0] == "repository")
                {
                    return string.Join(':', parts[1..^1]); // a name may hold a registry port: host:5000/name
                }
            }
        }

        return null;
    }

    /// <summary>The <c>Via</c> value a request sent to a parent carries: what it arrived with, then this proxy.</summary>
    public string ViaFor(string? arrivedWith) =>
        (string.IsNullOrEmpty(arrivedWith) ? "" : arrivedWith + ", ") + "1.1 " + InstanceName + " (MitmCache)";

    /// <summary>True when a <c>Via</c> header names <paramref name="instance"/> as a hop: the request went round in a loop.</summary>
    public static bool NamesHop(string? via, string instance)
    {
        if (string.IsNullOrEmpty(via))
        {
            return false;
        }

        foreach (var hop in via.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            // received-protocol SP received-by [ SP comment ]
            var parts = hop.Split(' ', 3, StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length >= 2 && string.Equals(parts[1], instance, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }
}
