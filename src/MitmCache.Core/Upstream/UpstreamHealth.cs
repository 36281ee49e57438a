using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;
using MitmCache.Configuration;
using MitmCache.Diagnostics;

namespace MitmCache.Upstream;

/// <summary>
/// Whether each upstream host answers: registries, their token hosts, the CDNs their blobs redirect to (and,
/// with the cluster tier, parent proxies). An outage that hangs must cost a pull nothing, so:
/// <list type="bullet">
/// <item>Down: no connection within <c>--connect-timeout</c> (TCP or TLS), no answer within the request's timeout,
/// a connection reset or refused, a 5xx or 429. Not down: a slow answer inside the timeout.</item>
/// <item>A request that waits for its answer longer than a quarter of the connect timeout has the host checked
/// with a fresh TCP+TLS connection (one check at a time per host, shared): a host that cannot be connected to
/// within the connect timeout is down, whatever pooled connection the request sits on.</item>
/// <item>While down, <see cref="RegistryUpstream"/> fails at once for that host (<see cref="ConnectError.Down"/>),
/// so every endpoint answers from the cache at once, as for a refused connection; requests waiting on it when it
/// went down give up at once, and its connections are closed (none is reused after it comes back).</item>
/// <item>One background probe per down host (a TCP+TLS connection and <c>GET /v2/</c>, 1 s doubling to 30 s)
/// marks it up on any answer but a 5xx or 429; so does any other answer from it.</item>
/// </list>
/// A failure belongs to the host that failed: a dead CDN is not a dead registry. Time here is the wall clock
/// (<c>ProxyHost</c> passes the system's), whatever clock the cache runs on: these are network timings.
/// </summary>
internal sealed class UpstreamHealth : IDisposable
{
    public static readonly TimeSpan FirstProbeDelay = TimeSpan.FromSeconds(1);
    public static readonly TimeSpan MaxProbeDelay = TimeSpan.FromSeconds(30);

    /// <summary>How often a parent of the tier that is up has its <c>/readyz</c> read: to see it degraded, or gone while idle.</summary>
    public static readonly TimeSpan ParentCheckInterval = TimeSpan.FromSeconds(5);

    /// <summary>Hosts known at most; those up and least recently used are forgotten first (redirect targets vary).</summary>
    internal const int MaxKnown = 256;

    private readonly ConcurrentDictionary<string, UpstreamState> _upstreams = new(StringComparer.OrdinalIgnoreCase);
    private readonly UpstreamConnector _connector;
    private readonly ProxySettings _settings;
    private readonly TimeProvider _time;
    private readonly ILogger<UpstreamHealth> _logger;
    private readonly X509Certificate2Collection _extraRoots;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Lazy<HttpMessageInvoker> _probeClients;
    private readonly Lazy<HttpMessageInvoker> _probeRedirects;
    private readonly Lazy<HttpMessageInvoker> _probeParents;

    public UpstreamHealth(UpstreamConnector connector, ProxySettings settings, TimeProvider time, ILogger<UpstreamHealth> logger)
    {
        _connector = connector;
        _settings = settings;
        _time = time;
        _logger = logger;
        _extraRoots = UpstreamHttp.ExtraRoots(settings);
        _probeClients = new(() => UpstreamHttp.CreateInvoker(connector, settings, health: null, UpstreamReach.Client, pooled: false));
        _probeRedirects = new(() => UpstreamHttp.CreateInvoker(connector, settings, health: null, UpstreamReach.Redirect, pooled: false));
        _probeParents = new(() => new HttpMessageInvoker(new SocketsHttpHandler
        {
            UseProxy = false,
            PooledConnectionLifetime = TimeSpan.Zero,
            ConnectCallback = async (context, ct) =>
                await connector.ConnectAsync(context.DnsEndPoint.Host, context.DnsEndPoint.Port, UpstreamReach.Parent, UpstreamRoute.Direct, ct),
        }, disposeHandler: true));

        // The tier's parents are known from the start and never forgotten; their failures are reported here.
        connector.Tier.Health = this;
        foreach (var parent in connector.Tier.States)
        {
            _upstreams[parent.Authority] = parent;
        }

        if (connector.Tier.Enabled)
        {
            _ = Task.Run(() => CheckParentsAsync(connector.Tier));
        }
    }

    public ILogger Logger => _logger;

    /// <summary>
    /// A body from a parent broke or stalled: a check (its <c>/readyz</c>, within the connect timeout), and down if
    /// that fails, which lets go every request waiting on it. False when it is down. A stall shares the host's check
    /// in flight or just made; a break (<paramref name="fresh"/>) has one of its own, since a check made before the
    /// break says nothing about it.
    /// </summary>
    public async Task<bool> ConfirmUpAsync(UpstreamState state, string reason, bool fresh = false)
    {
        if (state.IsDown)
        {
            return false;
        }

        if (await (fresh ? ConnectsAsync(state) : CheckReachableAsync(state)))
        {
            return true;
        }

        ReportFailure(state, reason, network: true);
        return false;
    }

    /// <summary>
    /// Reads each up parent's <c>/readyz</c> every <see cref="ParentCheckInterval"/>: degraded in itself, it ranks
    /// last (<see cref="ParentTier.Routes"/>); no answer, it is down, found before a request has to find it.
    /// </summary>
    private async Task CheckParentsAsync(ParentTier tier)
    {
        using var timer = new PeriodicTimer(ParentCheckInterval, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(_stopping.Token))
            {
                await Task.WhenAll(tier.States.Where(s => !s.IsDown).Select(async state =>
                {
                    var (up, reason, _) = await ProbeOnceAsync(state);
                    if (!up)
                    {
                        ReportFailure(state, "its /readyz: " + reason, network: true);
                    }
                }));
            }
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }
    }

    /// <summary>How long a request waits for its answer before the host is checked: a quarter of the connect timeout.</summary>
    private TimeSpan CheckAfter => _settings.ConnectTimeout / 4;

    /// <summary>The state of the host <paramref name="uri"/> names, known from now on if it was not.</summary>
    public UpstreamState Track(Uri uri, UpstreamReach reach)
    {
        var now = _time.GetTimestamp();
        if (!_upstreams.TryGetValue(uri.Authority, out var state))
        {
            ForgetOneIfFull();
            state = _upstreams.GetOrAdd(uri.Authority, authority => new UpstreamState(authority, uri.IdnHost, uri.Port, reach, now, _time.GetUtcNow()));
        }

        if (reach == UpstreamReach.Redirect && state.Reach != reach)
        {
            state.Reach = reach;
        }

        state.LastUsed = now;
        return state;
    }

    /// <summary>The host, if known and down now.</summary>
    public UpstreamState? FindDown(string authority) =>
        _upstreams.TryGetValue(authority, out var state) && state.IsDown ? state : null;

    /// <summary>Every known host, for <c>/metrics</c> and <c>/readyz</c>.</summary>
    public IEnumerable<UpstreamState> Known => _upstreams.Values;

    /// <summary>How long the host has been in its current state.</summary>
    public TimeSpan TimeInState(UpstreamState state) => _time.GetElapsedTime(state.Since);

    /// <summary>How long until the next probe of a down host (zero when one is running).</summary>
    public TimeSpan UntilProbe(UpstreamState state)
    {
        var left = -_time.GetElapsedTime(state.NextProbe);
        return left > TimeSpan.Zero ? left : TimeSpan.Zero;
    }

    /// <summary>What a request to a down host fails with at once.</summary>
    public UpstreamConnectException Unavailable(UpstreamState state, Exception? inner = null) => new(ConnectError.Down,
        string.Create(CultureInfo.InvariantCulture,
            $"{state.Authority} is down (for {TimeInState(state).TotalSeconds:0} s: {state.Reason}); not asked again until a probe gets an answer"),
        inner);

    /// <summary>
    /// Waits for <paramref name="send"/>; if it takes longer than a quarter of the connect timeout, checks that a
    /// fresh connection to the host can be made (again every connect timeout while it waits). A host that cannot
    /// be connected to is marked down, which cancels the request (it is linked to <see cref="UpstreamState.UpToken"/>).
    /// </summary>
    public async Task<HttpResponseMessage> WatchAsync(UpstreamState state, Task<HttpResponseMessage> send)
    {
        var wait = CheckAfter;
        while (!send.IsCompleted)
        {
            using (var timer = new CancellationTokenSource())
            {
                var waited = Task.Delay(wait, _time, timer.Token);
                if (await Task.WhenAny(send, waited) == send)
                {
                    await timer.CancelAsync();
                    break;
                }
            }

            var check = CheckReachableAsync(state);
            if (await Task.WhenAny(send, check) == send)
            {
                break;
            }

            if (!await check)
            {
                ReportFailure(state, string.Create(CultureInfo.InvariantCulture,
                    $"no connection within --connect-timeout {_settings.ConnectTimeout.TotalSeconds:0.###}s while a request waited for its answer"), network: true);
                break;
            }

            wait = _settings.ConnectTimeout;
        }

        return await send;
    }

    /// <summary>An answer: a 5xx or 429 marks the host down (its connections stay: it answers), any other marks it up.</summary>
    public void ReportAnswer(UpstreamState state, HttpStatusCode status)
    {
        if (RegistryUpstream.IsUpstreamFault(status))
        {
            ReportFailure(state, string.Create(CultureInfo.InvariantCulture, $"answered {(int)status}"), network: false);
        }
        else if (state.IsDown)
        {
            MarkUp(state);
        }
    }

    /// <summary>
    /// The host failed a request. The first failure marks it down: one log line, requests waiting on it cancelled,
    /// (for a network fault) its connections closed, and a probe started.
    /// </summary>
    public void ReportFailure(UpstreamState state, string reason, bool network)
    {
        CancellationTokenSource signal;
        int outage;
        lock (state.Gate)
        {
            if (state.IsDown || _stopping.IsCancellationRequested)
            {
                return;
            }

            // A host that flaps (down again soon after a probe saw it up) is probed less and less often.
            var wasUpFor = _time.GetElapsedTime(state.Since);
            state.ProbeDelay = NextProbeDelay(state.ProbeDelay, wasUpFor);
            signal = state.GoDown(_time.GetTimestamp(), _time.GetUtcNow(), reason);
            outage = state.Outages;
        }

        _logger.UpstreamDown(state.Authority, reason);
        signal.Cancel();
        if (network)
        {
            state.CloseConnections();
        }

        _ = Task.Run(() => ProbeAsync(state, outage));
    }

    /// <summary>
    /// The wait before the first probe of a host that just went down: <see cref="FirstProbeDelay"/>, or twice the last
    /// one (up to <see cref="MaxProbeDelay"/>) when the host flaps: down again sooner than that last wait after it came
    /// back (a registry that answers <c>/v2/</c> but 429s every pull).
    /// </summary>
    internal static TimeSpan NextProbeDelay(TimeSpan previous, TimeSpan wasUpFor) =>
        previous > TimeSpan.Zero && wasUpFor < previous ? Min(previous * 2, MaxProbeDelay) : FirstProbeDelay;

    /// <summary>Remembers a connection to a known host (pooled by the HTTP client), to close it if the host goes down.</summary>
    public void TrackConnection(string authority, Stream stream)
    {
        if (stream is NetworkStream network && _upstreams.TryGetValue(authority, out var state))
        {
            state.AddConnection(network.Socket);
        }
    }

    /// <summary>
    /// A request that failed this way says the host is down: no connection (refused, reset, unreachable, timed out,
    /// a parent proxy that could not reach it), or one broken before the answer. Not: a refused address, a name that
    /// does not resolve, a certificate not trusted: those are answers, and no probe would change them.
    /// </summary>
    public static bool IsOutage(HttpRequestException ex) => ex.InnerException is UpstreamConnectException connect
        ? connect.Error is ConnectError.Timeout or ConnectError.Unreachable or ConnectError.ParentProxyRefused
        : ex.HttpRequestError is HttpRequestError.ConnectionError or HttpRequestError.ResponseEnded
            || (ex.HttpRequestError is HttpRequestError.SecureConnectionError && ex.InnerException is not AuthenticationException);

    private void MarkUp(UpstreamState state)
    {
        TimeSpan downFor;
        lock (state.Gate)
        {
            if (!state.IsDown)
            {
                return;
            }

            downFor = _time.GetElapsedTime(state.Since);
            state.GoUp(_time.GetTimestamp(), _time.GetUtcNow());
        }

        _logger.UpstreamUp(state.Authority, Math.Round(downFor.TotalSeconds, 1));
    }

    private async Task ProbeAsync(UpstreamState state, int outage)
    {
        var delay = state.ProbeDelay;
        while (state.IsDown && state.Outages == outage && !_stopping.IsCancellationRequested)
        {
            state.NextProbe = _time.GetTimestamp() + (long)(delay.TotalSeconds * _time.TimestampFrequency);
            try
            {
                await Task.Delay(delay, _time, _stopping.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            if (!state.IsDown || state.Outages != outage)
            {
                return; // something else got an answer from it meanwhile
            }

            var (up, reason, retryAfter) = await ProbeOnceAsync(state);
            if (up)
            {
                MarkUp(state);
                return;
            }

            _logger.UpstreamProbeFailed(state.Authority, reason);
            delay = Min(Max(delay * 2, retryAfter), MaxProbeDelay);
            lock (state.Gate)
            {
                state.Reason = reason;
                state.ProbeDelay = delay;
            }
        }
    }

    /// <summary>
    /// A new connection (TCP, TLS) and <c>GET /v2/</c>, without credentials: any answer but a 5xx or 429 is up. A parent
    /// of the tier is asked <c>GET /readyz</c> on a direct connection instead: ready (or degraded) is up.
    /// </summary>
    private async Task<(bool Up, string Reason, TimeSpan RetryAfter)> ProbeOnceAsync(UpstreamState state, TimeSpan? budget = null)
    {
        var parent = state.Reach == UpstreamReach.Parent;
        var invoker = parent ? _probeParents.Value : state.Reach == UpstreamReach.Client ? _probeClients.Value : _probeRedirects.Value;
        using var request = new HttpRequestMessage(HttpMethod.Get,
            new UriBuilder(parent ? Uri.UriSchemeHttp : Uri.UriSchemeHttps, state.Host, state.Port, parent ? "/readyz" : "/v2/").Uri);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
        deadline.CancelAfter(budget ?? _settings.UpstreamTimeout);
        try
        {
            using var response = await invoker.SendAsync(request, deadline.Token);
            var retryAfter = response.Headers.RetryAfter?.Delta ?? TimeSpan.Zero;
            if (RegistryUpstream.IsUpstreamFault(response.StatusCode))
            {
                return (false, string.Create(CultureInfo.InvariantCulture, $"answered {(int)response.StatusCode}"), retryAfter);
            }

            if (parent)
            {
                state.Degraded = response.Headers.Contains("X-MitmCache-Degraded")
                    ? ParentTier.OwnDegradation(await response.Content.ReadAsStringAsync(deadline.Token))
                    : null;
            }

            return (true, "", TimeSpan.Zero);
        }
        catch (OperationCanceledException) when (!_stopping.IsCancellationRequested)
        {
            return (false, string.Create(CultureInfo.InvariantCulture, $"no answer within {_settings.UpstreamTimeout.TotalSeconds:0.###}s"), TimeSpan.Zero);
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or OperationCanceledException)
        {
            return (false, HttpForwarder.Describe(ex).Reason, TimeSpan.Zero);
        }
    }

    /// <summary>Can a new connection to the host be made (TCP, then TLS) within the connect timeout? One check at a time per host, shared.</summary>
    private Task<bool> CheckReachableAsync(UpstreamState state)
    {
        lock (state.Gate)
        {
            if (state.Check is { } last && (!last.IsCompleted || _time.GetElapsedTime(state.CheckStarted) < _settings.ConnectTimeout))
            {
                return last;
            }

            state.CheckStarted = _time.GetTimestamp();
            return state.Check = ConnectsAsync(state);
        }
    }

    private async Task<bool> ConnectsAsync(UpstreamState state)
    {
        if (state.Reach == UpstreamReach.Parent)
        {
            // A parent that accepts connections but stopped answering (stopped, swapping) is as dead as one that refuses.
            return (await ProbeOnceAsync(state, _settings.ConnectTimeout)).Up || _stopping.IsCancellationRequested;
        }

        using var budget = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
        budget.CancelAfter(_settings.ConnectTimeout);
        try
        {
            await using var stream = await _connector.ConnectAsync(state.Host, state.Port, state.Reach, budget.Token);
            await using var tls = new SslStream(stream);
            await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = state.Host.Trim('[', ']'),
                RemoteCertificateValidationCallback = (_, certificate, chain, errors) => UpstreamHttp.ValidateServerCertificate(certificate, chain, errors, _extraRoots),
            }, budget.Token);
            return true;
        }
        catch (AuthenticationException)
        {
            return true; // it answered the handshake: reachable (what it answers is the request's business)
        }
        catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException)
        {
            return _stopping.IsCancellationRequested; // shutting down is not an outage
        }
    }

    private void ForgetOneIfFull()
    {
        if (_upstreams.Count < MaxKnown)
        {
            return;
        }

        var idle = _upstreams.Values.Where(s => !s.IsDown && s.Connections.IsEmpty && s.Reach != UpstreamReach.Parent).MinBy(s => s.LastUsed);
        if (idle is not null)
        {
            _upstreams.TryRemove(new KeyValuePair<string, UpstreamState>(idle.Authority, idle));
        }
    }

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;

    public void Dispose()
    {
        _stopping.Cancel();
        if (_probeClients.IsValueCreated)
        {
            _probeClients.Value.Dispose();
        }

        if (_probeRedirects.IsValueCreated)
        {
            _probeRedirects.Value.Dispose();
        }

        if (_probeParents.IsValueCreated)
        {
            _probeParents.Value.Dispose();
        }
    }
}
