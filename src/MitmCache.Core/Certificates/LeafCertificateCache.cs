using System.Net.Security;
using System.Security.Cryptography.X509Certificates;

namespace MitmCache.Certificates;

/// <summary>
/// The per-host certificate contexts handed to Kestrel's TLS callback. Each host is minted once,
/// even when many handshakes for it arrive together; the cache holds at most
/// <see cref="Capacity"/> hosts, dropping the least recently used; a leaf is replaced once less
/// than a third of its validity remains.
/// </summary>
/// <remarks>
/// One lock guards the map and the recency list and is held only for pointer updates. Minting
/// (about a millisecond with the chain build in SslStreamCertificateContext.Create) runs outside
/// it, inside a <see cref="Lazy{T}"/> that lets concurrent callers for one host wait for a single
/// mint. Evicted or replaced certificates are not disposed: a handshake may still be using them,
/// and the GC releases them once it is done.
/// </remarks>
internal sealed class LeafCertificateCache
{
    public const int DefaultCapacity = 1024;

    // Offered in this order: HTTP/2 first, as Kestrel does.
    private static readonly List<SslApplicationProtocol> s_applicationProtocols = [SslApplicationProtocol.Http2, SslApplicationProtocol.Http11];

    private readonly LeafCertificateFactory _factory;
    private readonly TimeProvider _time;
    private readonly X509Certificate2Collection _additionalCertificates;
    private readonly Dictionary<string, LinkedListNode<Entry>> _entries = new(StringComparer.Ordinal);
    private readonly LinkedList<Entry> _recency = new(); // most recently used first
    private readonly Lock _lock = new();
    private long _mintedCount;

    /// <param name="factory">Mints the leaves.</param>
    /// <param name="time">Decides when a leaf is due for renewal.</param>
    /// <param name="capacity">Most hosts kept; default <see cref="DefaultCapacity"/>.</param>
    public LeafCertificateCache(LeafCertificateFactory factory, TimeProvider time, int capacity = DefaultCapacity)
    {
        ArgumentNullException.ThrowIfNull(factory);
        ArgumentNullException.ThrowIfNull(time);
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _factory = factory;
        _time = time;
        Capacity = capacity;

        // Sent after the leaf so clients that were given the root can see the whole chain. The
        // public copy: the TLS stack has no business holding the root's private key.
        _additionalCertificates = [factory.Authority.PublicCertificate];
    }

    public int Capacity { get; }

    /// <summary>Hosts currently cached.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>Leaves minted since start, renewals included.</summary>
    public long MintedCount => Interlocked.Read(ref _mintedCount);

    /// <summary>Returns the certificate context for <paramref name="host"/>, minting it on first use.</summary>
    /// <exception cref="ArgumentException">The host is not a valid ASCII DNS name or IP literal.</exception>
    public SslStreamCertificateContext Get(string host) => GetLeaf(host).Context;

    /// <summary>
    /// The options for a TLS handshake as <paramref name="host"/>: its certificate context and the
    /// application protocols the proxy offers (HTTP/2, then HTTP/1.1). One instance per leaf, shared by
    /// every handshake for the host; SslStream and Kestrel only read it.
    /// </summary>
    /// <exception cref="ArgumentException">The host is not a valid ASCII DNS name or IP literal.</exception>
    public SslServerAuthenticationOptions GetServerOptions(string host) => GetLeaf(host).Options;

    private Leaf GetLeaf(string host)
    {
        // A name already in its normal form (what the TLS callback passes: lower-case, validated) is
        // found without parsing it again; any other spelling is parsed, and so normalised, first.
        var node = TryGetNormalized(host);
        CertificateHost? parsed = null;
        if (node is null)
        {
            parsed = CertificateHost.Parse(host);
            node = GetOrAdd(parsed);
        }

        var leaf = Resolve(node);
        if (_time.GetUtcNow() < leaf.RenewAfter)
        {
            return leaf;
        }

        return Resolve(Renew(node, parsed ?? CertificateHost.Parse(host)));
    }

    private LinkedListNode<Entry>? TryGetNormalized(string host)
    {
        lock (_lock)
        {
            if (!_entries.TryGetValue(host, out var node))
            {
                return null;
            }

            Touch(node);
            return node;
        }
    }

    private LinkedListNode<Entry> GetOrAdd(CertificateHost host)
    {
        lock (_lock)
        {
            if (_entries.TryGetValue(host.Name, out var node))
            {
                Touch(node);
                return node;
            }

            return AddLocked(host);
        }
    }

    private void Touch(LinkedListNode<Entry> node)
    {
        if (node != _recency.First)
        {
            _recency.Remove(node);
            _recency.AddFirst(node);
        }
    }

    /// <summary>Swaps a fresh entry in for <paramref name="stale"/>, unless another caller already did.</summary>
    private LinkedListNode<Entry> Renew(LinkedListNode<Entry> stale, CertificateHost host)
    {
        lock (_lock)
        {
            if (_entries.TryGetValue(host.Name, out var current))
            {
                if (current != stale)
                {
                    return current;
                }

                _entries.Remove(host.Name);
                _recency.Remove(stale);
            }

            return AddLocked(host);
        }
    }

    private LinkedListNode<Entry> AddLocked(CertificateHost host)
    {
        var entry = new Entry(host.Name, new Lazy<Leaf>(() => Mint(host), LazyThreadSafetyMode.ExecutionAndPublication));
        var node = _recency.AddFirst(entry);
        _entries.Add(host.Name, node);
        while (_entries.Count > Capacity)
        {
            var last = _recency.Last!;
            _recency.RemoveLast();
            _entries.Remove(last.Value.Key);
        }

        return node;
    }

    private Leaf Resolve(LinkedListNode<Entry> node)
    {
        try
        {
            return node.Value.Leaf.Value;
        }
        catch
        {
            // Lazy would replay the failure (say, an expired root) forever; forget it so the
            // next handshake tries again.
            lock (_lock)
            {
                if (_entries.TryGetValue(node.Value.Key, out var current) && current == node)
                {
                    _entries.Remove(node.Value.Key);
                    _recency.Remove(node);
                }
            }

            throw;
        }
    }

    private Leaf Mint(CertificateHost host)
    {
        var certificate = _factory.Mint(host);
        var context = SslStreamCertificateContext.Create(certificate, _additionalCertificates, offline: true);
        Interlocked.Increment(ref _mintedCount);

        var notBefore = new DateTimeOffset(certificate.NotBefore.ToUniversalTime());
        var notAfter = new DateTimeOffset(certificate.NotAfter.ToUniversalTime());
        var options = new SslServerAuthenticationOptions { ServerCertificateContext = context, ApplicationProtocols = s_applicationProtocols };
        return new Leaf(context, options, notBefore + ((notAfter - notBefore) * 2 / 3));
    }

    private sealed record Entry(string Key, Lazy<Leaf> Leaf);

    private sealed record Leaf(SslStreamCertificateContext Context, SslServerAuthenticationOptions Options, DateTimeOffset RenewAfter);
}
