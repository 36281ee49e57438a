using System.Globalization;
using System.Net.Http.Headers;
using MitmCache.Diagnostics;

namespace MitmCache.Upstream;

/// <summary>
/// The body of a parent's answer, as the caller reads it: one stream, whatever happens to the parent underneath.
/// Its bytes are counted for the parent (<see cref="ParentCounts"/>). For a whole blob, a body that breaks (the
/// parent killed, a reset, a premature end) or stalls (no byte within <c>--upstream-timeout</c>, or the parent
/// failing a check a quarter of <c>--connect-timeout</c> into a wait, <see cref="UpstreamHealth.ConfirmUpAsync"/>)
/// goes on from the next route in the failover order with a <c>Range</c> from the byte reached
/// (<see cref="TierHandler.ResumeAsync"/>). The caller's fill hashes every byte, so the digest check covers the
/// whole blob whichever parents sent its parts.
/// <para>A parent whose body broke is checked at once (without waiting for the check): down if it no longer
/// answers its <c>/readyz</c>, kept if it does (the break was its upstream's, say). Either way this body goes on
/// from the next route.</para>
/// </summary>
internal sealed class ResumingStream : ReadOnlyBodyStream
{
    private readonly TierHandler _handler;
    private readonly ParentTier _tier;
    private readonly UpstreamHealth? _health;
    private readonly HttpRequestMessage _template;
    private readonly string? _arrivedVia;
    private readonly Queue<UpstreamRoute> _rest;
    private readonly EntityTagHeaderValue? _etag;
    private readonly bool _resumable;
    private long? _total;
    private long _position;
    private Leg? _leg;
    private bool _disposed;

    /// <param name="rest">The routes after <paramref name="route"/> in the failover order; empty: nothing is resumed.</param>
    public ResumingStream(TierHandler handler, ParentTier tier, UpstreamHealth? health, HttpRequestMessage template, string? arrivedVia,
        HttpResponseMessage first, UpstreamRoute route, UpstreamRoute[] rest)
    {
        _handler = handler;
        _tier = tier;
        _health = health;
        _template = template;
        _arrivedVia = arrivedVia;
        _rest = new Queue<UpstreamRoute>(rest);
        _resumable = rest.Length > 0;
        _etag = first.Headers.ETag;
        _total = first.Content.Headers.ContentLength;
        _leg = new Leg(route, first, body: null, route.IsDirect ? null : tier.States[route.Parent]);
    }

    public override long Position { get => _position; set => throw new NotSupportedException(); }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        while (true)
        {
            var leg = _leg ?? throw new IOException("the body broke and could not be resumed");
            try
            {
                leg.Body ??= await leg.Content.ReadAsStreamAsync(cancellationToken);
                var read = await ReadLegAsync(leg, buffer, cancellationToken);
                if (read == 0 && buffer.Length > 0 && _total is { } total && _position < total)
                {
                    throw new IOException(string.Create(CultureInfo.InvariantCulture, $"the body ended at byte {_position} of {total}"));
                }

                _position += read;
                if (!leg.Route.IsDirect)
                {
                    _tier.Counts[leg.Route.Parent].Received(read);
                }

                return read;
            }
            catch (Exception ex) when (ex is IOException or HttpRequestException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
            {
                await ResumeAsync(leg, ex, cancellationToken);
            }
        }
    }

    /// <summary>One read from the current route, let go when its parent goes down or it stalls.</summary>
    private async ValueTask<int> ReadLegAsync(Leg leg, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        using var caller = cancellationToken.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), leg.Cancel);
        var pending = leg.Body!.ReadAsync(buffer, leg.Cancel.Token);
        if (pending.IsCompleted)
        {
            return await pending;
        }

        if (_resumable)
        {
            leg.Cancel.CancelAfter(_tier.UpstreamTimeout); // any other body may pause as long as its sender likes
        }

        leg.StartWatch(_health, _tier.ConnectTimeout);
        try
        {
            return await pending;
        }
        finally
        {
            leg.StopWatch();
            if (_resumable && !leg.Cancel.IsCancellationRequested)
            {
                leg.Cancel.CancelAfter(Timeout.InfiniteTimeSpan);
            }
        }
    }

    /// <summary>The current route failed this body: the next route that answers with the rest takes over, or the read fails.</summary>
    private async Task ResumeAsync(Leg broken, Exception failure, CancellationToken cancellationToken)
    {
        var reason = broken.Cancel.IsCancellationRequested && broken.State is { IsDown: false }
            ? string.Create(CultureInfo.InvariantCulture, $"no byte within --upstream-timeout {_tier.UpstreamTimeout.TotalSeconds:0.###}s")
            : broken.State is { IsDown: true } ? broken.State.Reason : HttpForwarder.Describe(failure).Reason;
        _leg = null;
        broken.Dispose();
        if (broken.State is { } state)
        {
            _tier.Counts[broken.Route.Parent].Failure();
            if (_health is not null)
            {
                _ = _health.ConfirmUpAsync(state, "a blob body from it broke: " + reason, fresh: true);
            }
        }

        if (!_resumable)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure); // not a whole blob: the break is the caller's to see
        }

        var from = broken.State is { } parent ? "parent " + parent.Authority : "direct";
        var target = _template.RequestUri!.AbsolutePath;
        var refusals = new List<string>();
        while (_rest.TryDequeue(out var route))
        {
            var (next, refused) = await _handler.ResumeAsync(_template, _arrivedVia, route, _position, _total, _etag, cancellationToken);
            if (next is not null)
            {
                _total ??= next.Content.Headers.ContentRange?.Length;
                _health?.Logger.ParentBodyResuming(target, from, _position, reason, next.State is { } taker ? "parent " + taker.Authority : "direct");
                _leg = next;
                return;
            }

            refusals.Add(refused);
        }

        var why = refusals.Count == 0 ? $"{from}: {reason}; no other route" : $"{from}: {reason}; " + string.Join("; ", refusals);
        _health?.Logger.ParentBodyNotResumed(target, _position, why);
        throw new IOException($"the body broke after {_position} bytes and could not be resumed ({why})", failure);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing && !_disposed)
        {
            _disposed = true;
            _leg?.Dispose();
            _template.Dispose();
        }

        base.Dispose(disposing);
    }

    /// <summary>
    /// One route's part of the body: its answer's content as the HTTP client made it (the first answer's content is
    /// replaced by the caller's view afterwards), its body stream, and what lets a read on it go: its parent going
    /// down (<see cref="UpstreamState.UpToken"/>), a stall, or the caller.
    /// </summary>
    internal sealed class Leg : IDisposable
    {
        private readonly CancellationTokenRegistration _down;
        private ITimer? _watch;

        public Leg(UpstreamRoute route, HttpResponseMessage response, Stream? body, UpstreamState? state)
        {
            Route = route;
            Content = response.Content;
            Body = body;
            State = state;
            _down = state?.UpToken.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), Cancel) ?? default;
        }

        public UpstreamRoute Route { get; }

        public HttpContent Content { get; }

        public Stream? Body { get; set; }

        /// <summary>The parent's health, or null for direct.</summary>
        public UpstreamState? State { get; }

        public CancellationTokenSource Cancel { get; } = new();

        /// <summary>A read is waiting: the parent is checked a quarter of the connect timeout in, then every connect timeout.</summary>
        public void StartWatch(UpstreamHealth? health, TimeSpan connectTimeout)
        {
            if (health is null || State is not { } state)
            {
                return;
            }

            _watch ??= TimeProvider.System.CreateTimer(_ => _ = health.ConfirmUpAsync(state, "a blob body from it stalled and a fresh connection failed"),
                null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            _watch.Change(connectTimeout / 4, connectTimeout);
        }

        public void StopWatch() => _watch?.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);

        public void Dispose()
        {
            _down.Dispose();
            _watch?.Dispose();
            Body?.Dispose();
            Content.Dispose();
            Cancel.Dispose();
        }
    }
}
