using System.Globalization;
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using System.Text;
using MitmCache.Configuration;
using MitmCache.Tunneling;

namespace MitmCache.Upstream;

/// <summary>Who chose where a connection goes, which decides what it may reach.</summary>
internal enum UpstreamReach
{
    /// <summary>A client: a CONNECT target, or the registry it asked for. Every address but the denied ones.</summary>
    Client,

    /// <summary>
    /// An upstream, through a redirect: also no loopback or private address, unless a <c>--connect-to</c>
    /// rule (the operator's own choice) or <c>--allow-upstream-network</c> says so.
    /// </summary>
    Redirect,

    /// <summary>A parent proxy of the cluster tier (<c>--upstream-proxy</c>): the operator's choice, dialled directly.</summary>
    Parent,
}

/// <summary>
/// The one place that opens TCP connections to upstreams, for blind tunnels and for the HTTP client
/// alike: applies <c>--connect-to</c> overrides, resolves names itself and refuses denied addresses
/// (so DNS cannot point us at metadata endpoints or at ourselves), and goes through a parent proxy
/// with <c>CONNECT</c> when one is configured, after the same checks: the parent is only ever asked
/// for a target the proxy would have dialled itself.
/// <para>One <c>--connect-timeout</c> bounds it all: resolving, connecting and, through a parent, its answer
/// to <c>CONNECT</c>. A name's addresses are raced as RFC 8305 (happy eyeballs) says: a new attempt every
/// 250 ms, or as soon as one fails, families alternating, the first connection wins; so one address that
/// drops packets costs 250 ms, not the whole budget.</para>
/// </summary>
internal sealed class UpstreamConnector
{
    /// <summary>RFC 8305's recommended Connection Attempt Delay.</summary>
    internal static readonly TimeSpan AttemptDelay = TimeSpan.FromMilliseconds(250);

    private readonly TimeSpan _connectTimeout;
    private readonly IReadOnlyList<ConnectToRule> _connectTo;
    private readonly IReadOnlyList<IPNetwork> _allowedInternal;
    private readonly ParentTier _tier;
    private readonly IPEndPoint _listen;
    private readonly Lazy<HashSet<IPAddress>> _localAddresses = new(LocalAddresses);

    /// <param name="tier">The host's one tier (shared with health and the HTTP client); a tier of its own otherwise.</param>
    public UpstreamConnector(ProxySettings settings, ParentTier? tier = null)
    {
        _connectTimeout = settings.ConnectTimeout;
        _connectTo = settings.ConnectTo;
        _allowedInternal = settings.AllowedUpstreamNetworks;
        _tier = tier ?? new ParentTier(settings);
        _listen = settings.Listen;
    }

    public ParentTier Tier => _tier;

    /// <summary>Where a <c>host:port</c> is really dialled after <c>--connect-to</c>, and whether a rule chose it.</summary>
    public (string Host, int Port, bool ByRule) Resolve(string host, int port)
    {
        foreach (var rule in _connectTo)
        {
            if (rule.Matches(host, port))
            {
                return (rule.Address, rule.TargetPort, true);
            }
        }

        return (host, port, false);
    }

    /// <exception cref="UpstreamConnectException">The connection could not be made; see its <see cref="ConnectError"/>.</exception>
    public Task<Stream> ConnectAsync(string host, int port, CancellationToken cancellationToken) =>
        ConnectAsync(host, port, UpstreamReach.Client, cancellationToken);

    /// <summary>
    /// Through the tier when there is one: the parents in the operator's order, those known down skipped, each that
    /// fails reported and the next tried, then direct unless <c>--no-direct-fallback</c>. Blind tunnels and checks
    /// come here; registry requests choose their own order per key (<see cref="TierHandler"/>).
    /// </summary>
    /// <inheritdoc cref="ConnectAsync(string, int, CancellationToken)"/>
    public async Task<Stream> ConnectAsync(string host, int port, UpstreamReach reach, CancellationToken cancellationToken)
    {
        if (!_tier.Enabled || reach == UpstreamReach.Parent)
        {
            return await ConnectAsync(host, port, reach, UpstreamRoute.Direct, cancellationToken);
        }

        var routes = _tier.Routes(key: null);
        var failures = _tier.DownParents().ToList();
        foreach (var route in routes)
        {
            if (route.IsDirect)
            {
                return await ConnectAsync(host, port, reach, route, cancellationToken);
            }

            try
            {
                return await ConnectAsync(host, port, reach, route, cancellationToken);
            }
            catch (UpstreamConnectException ex) when (ex.Error is ConnectError.Timeout or ConnectError.Unreachable or ConnectError.ParentProxyRefused)
            {
                failures.Add($"parent {_tier.Parents[route.Parent].Authority}: {ex.Message}");
                if (ex.Error != ConnectError.ParentProxyRefused)
                {
                    _tier.ReportFailure(route.Parent, ex.Message, network: true);
                }
            }
        }

        throw _tier.NoRoute($"{host}:{port}", failures);
    }

    /// <summary>One way only: through the given parent (<c>CONNECT</c>), or direct.</summary>
    /// <inheritdoc cref="ConnectAsync(string, int, CancellationToken)"/>
    public async Task<Stream> ConnectAsync(string host, int port, UpstreamReach reach, UpstreamRoute route, CancellationToken cancellationToken)
    {
        // A URI's IPv6 host comes bracketed ("[::1]"); inside, hosts are bare, and brackets go back on exactly once.
        var named = host.StartsWith('[') && host.EndsWith(']') ? host[1..^1] : host;
        var (dialHost, dialPort, byRule) = Resolve(named, port);
        var internalAllowed = reach is UpstreamReach.Client or UpstreamReach.Parent || byRule;
        using var budget = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        budget.CancelAfter(_connectTimeout);
        try
        {
            if (route.IsDirect)
            {
                return new NetworkStream(await ConnectDirectAsync(dialHost, dialPort, reach == UpstreamReach.Parent ? null : internalAllowed, budget.Token), ownsSocket: true);
            }

            // The parent resolves the name again: check every address it could pick. A name we cannot
            // resolve at all is the parent's to resolve (a node may see only internal DNS), as for clients.
            var addresses = await ResolveAsync(dialHost, budget.Token, parent: true);
            if (addresses?.FirstOrDefault(a => IsRefused(a, dialPort, internalAllowed)) is { } refused)
            {
                throw Refused(dialHost, refused, internalAllowed);
            }

            var parent = _tier.Parents[route.Parent];
            var socket = await ConnectDirectAsync(parent.IdnHost.Trim('[', ']'), parent.Port, null, budget.Token);
            var stream = new NetworkStream(socket, ownsSocket: true);
            try
            {
                // The parent is asked for the name, not for where --connect-to sends it here: the parent intercepts
                // and caches by name, and dials it as its own --connect-to says.
                await ParentConnectAsync(stream, named, port, _tier.ViaFor(ParentTier.ArrivedVia.Value), budget.Token);
                return stream;
            }
            catch
            {
                await stream.DisposeAsync();
                throw;
            }
        }
        catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested)
        {
            var through = route.IsDirect ? "" : $" through parent {_tier.Parents[route.Parent].Authority}";
            throw new UpstreamConnectException(ConnectError.Timeout,
                $"connecting to {dialHost}:{dialPort}{through} timed out (--connect-timeout {_connectTimeout.TotalSeconds:0.###}s)", ex);
        }
    }

    /// <summary>The addresses of a name or literal; null when a parent proxy is asked and the name does not resolve here.</summary>
    private static async Task<IPAddress[]?> ResolveAsync(string host, CancellationToken cancellationToken, bool parent = false)
    {
        if (IPAddress.TryParse(host, out var literal))
        {
            return [literal];
        }

        try
        {
            return await Dns.GetHostAddressesAsync(host, cancellationToken);
        }
        catch (SocketException) when (parent)
        {
            return null;
        }
        catch (SocketException ex)
        {
            throw new UpstreamConnectException(ConnectError.NameNotResolved, $"cannot resolve {host}: {ex.SocketErrorCode}", ex);
        }
    }

    private bool IsRefused(IPAddress address, int port, bool internalAllowed) =>
        IsDenied(address, port)
        || (!internalAllowed && HostPolicy.IsInternalAddress(address) && !_allowedInternal.Any(n => n.Contains(address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address)));

    private static UpstreamConnectException Refused(string host, IPAddress address, bool internalAllowed) =>
        new(ConnectError.Denied, internalAllowed || HostPolicy.IsDeniedAddress(address)
            ? $"{host} resolves to a refused address ({address})"
            : $"{host} resolves to an internal address ({address}), where an upstream's redirect may not lead (see --allow-upstream-network)");

    /// <param name="internalAllowed">Null: dial whatever the name resolves to (the parent proxy); else refuse
    /// denied addresses, and internal ones too unless allowed.</param>
    private async Task<Socket> ConnectDirectAsync(string host, int port, bool? internalAllowed, CancellationToken cancellationToken)
    {
        var addresses = (await ResolveAsync(host, cancellationToken))!;
        var allowed = internalAllowed is { } mayReachInternal ? addresses.Where(a => !IsRefused(a, port, mayReachInternal)).ToArray() : addresses;
        if (allowed.Length == 0)
        {
            throw addresses.Length == 0
                ? new UpstreamConnectException(ConnectError.NameNotResolved, $"{host} has no addresses")
                : Refused(host, addresses[0], internalAllowed!.Value);
        }

        try
        {
            return await ConnectAnyAsync(allowed, port, AttemptDelay, cancellationToken);
        }
        catch (SocketException ex)
        {
            throw new UpstreamConnectException(ConnectError.Unreachable, $"cannot connect to {host}:{port}: {ex.SocketErrorCode}", ex);
        }
    }

    /// <summary>
    /// Happy eyeballs (RFC 8305 section 5): the addresses in <see cref="Interleave"/> order, a new attempt
    /// every <paramref name="attemptDelay"/> or at once when one fails, the first to connect wins and the
    /// others are cancelled (or closed, if they connect anyway).
    /// </summary>
    /// <exception cref="SocketException">Every address failed: the last failure.</exception>
    internal static async Task<Socket> ConnectAnyAsync(IReadOnlyList<IPAddress> addresses, int port, TimeSpan attemptDelay, CancellationToken cancellationToken)
    {
        var ordered = Interleave(addresses);
        using var race = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var pending = new List<Task<Socket>>();
        SocketException? last = null;
        var next = 0;
        try
        {
            while (next < ordered.Count || pending.Count > 0)
            {
                if (next < ordered.Count)
                {
                    pending.Add(ConnectOneAsync(ordered[next++], port, race.Token));
                }

                var done = next < ordered.Count
                    ? await Task.WhenAny([.. pending, Task.Delay(attemptDelay, race.Token)])
                    : await Task.WhenAny(pending);
                cancellationToken.ThrowIfCancellationRequested();
                if (done is not Task<Socket> attempt)
                {
                    continue; // the attempt delay passed: start the next address alongside
                }

                pending.Remove(attempt);
                if (attempt.IsCompletedSuccessfully)
                {
                    return attempt.Result;
                }

                // Failed: the next address starts at once.
                last = attempt.Exception?.InnerException as SocketException
                    ?? throw attempt.Exception?.InnerException ?? new OperationCanceledException(cancellationToken);
            }

            throw last ?? new SocketException((int)SocketError.HostUnreachable);
        }
        finally
        {
            await race.CancelAsync();
            foreach (var loser in pending)
            {
                // Cancelled, or connected just too late: closed either way.
                _ = loser.ContinueWith(static t =>
                {
                    if (t.IsCompletedSuccessfully)
                    {
                        t.Result.Dispose();
                    }
                }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
            }
        }
    }

    /// <summary>RFC 8305 section 4: families alternate, starting with the family of the first address.</summary>
    internal static IReadOnlyList<IPAddress> Interleave(IReadOnlyList<IPAddress> addresses)
    {
        if (addresses.All(a => a.AddressFamily == addresses[0].AddressFamily))
        {
            return addresses;
        }

        var first = addresses.Where(a => a.AddressFamily == addresses[0].AddressFamily).ToList();
        var second = addresses.Where(a => a.AddressFamily != addresses[0].AddressFamily).ToList();
        var ordered = new List<IPAddress>(addresses.Count);
        for (var i = 0; i < Math.Max(first.Count, second.Count); i++)
        {
            if (i < first.Count)
            {
                ordered.Add(first[i]);
            }

            if (i < second.Count)
            {
                ordered.Add(second[i]);
            }
        }

        return ordered;
    }

    private static async Task<Socket> ConnectOneAsync(IPAddress address, int port, CancellationToken cancellationToken)
    {
        var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(new IPEndPoint(address, port), cancellationToken);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static async Task ParentConnectAsync(Stream stream, string host, int port, string via, CancellationToken cancellationToken)
    {
        var authority = IPAddress.TryParse(host, out var literal) && literal.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{host}]:{port}" : $"{host}:{port}";
        var request = Encoding.ASCII.GetBytes($"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\nVia: {via}\r\n\r\n");
        await stream.WriteAsync(request, cancellationToken);

        // Read the response head byte by byte: it is short, and we must not read past it.
        var head = new StringBuilder();
        var one = new byte[1];
        while (!head.ToString().EndsWith("\r\n\r\n", StringComparison.Ordinal))
        {
            if (head.Length > 8192 || await stream.ReadAsync(one, cancellationToken) == 0)
            {
                throw new UpstreamConnectException(ConnectError.ParentProxyRefused, "the parent proxy closed the connection");
            }

            head.Append((char)one[0]);
        }

        var status = head.ToString().Split(' ', 3);
        if (status.Length < 2 || !int.TryParse(status[1], NumberStyles.None, CultureInfo.InvariantCulture, out var code) || code / 100 != 2)
        {
            throw new UpstreamConnectException(ConnectError.ParentProxyRefused, $"the parent proxy refused CONNECT {authority}: {head.ToString().Split('\r')[0]}");
        }
    }

    private bool IsDenied(IPAddress address, int port)
    {
        if (HostPolicy.IsDeniedAddress(address))
        {
            return true;
        }

        // Never connect back to our own listener: that is a loop, and a way around the policy.
        if (port != _listen.Port)
        {
            return false;
        }

        var listenAny = _listen.Address.Equals(IPAddress.Any) || _listen.Address.Equals(IPAddress.IPv6Any);
        return address.Equals(_listen.Address)
            || (IPAddress.IsLoopback(address) && (IPAddress.IsLoopback(_listen.Address) || listenAny))
            || (listenAny && _localAddresses.Value.Contains(address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address));
    }

    private static HashSet<IPAddress> LocalAddresses()
    {
        var set = new HashSet<IPAddress>();
        try
        {
            foreach (var nic in NetworkInterface.GetAllNetworkInterfaces())
            {
                foreach (var unicast in nic.GetIPProperties().UnicastAddresses)
                {
                    set.Add(unicast.Address);
                }
            }
        }
        catch (NetworkInformationException)
        {
            // Best effort: loopback and the listen address are still checked.
        }

        return set;
    }
}
