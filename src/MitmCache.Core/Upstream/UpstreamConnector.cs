using System.Globalization;
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using System.Text;
using MitmCache.Configuration;
using MitmCache.Tunneling;

namespace MitmCache.Upstream;

/// <summary>
/// The one place that opens TCP connections to upstreams, for blind tunnels and for the HTTP client
/// alike: applies <c>--connect-to</c> overrides, resolves names itself and refuses denied addresses
/// (so DNS cannot point us at metadata endpoints or at ourselves), and goes through a parent proxy
/// with <c>CONNECT</c> when one is configured.
/// </summary>
internal sealed class UpstreamConnector
{
    private static readonly TimeSpan s_connectTimeout = TimeSpan.FromSeconds(10);

    private readonly IReadOnlyList<ConnectToRule> _connectTo;
    private readonly Uri? _parentProxy;
    private readonly IPEndPoint _listen;
    private readonly Lazy<HashSet<IPAddress>> _localAddresses = new(LocalAddresses);

    public UpstreamConnector(ProxySettings settings)
    {
        _connectTo = settings.ConnectTo;
        _parentProxy = settings.UpstreamProxy;
        _listen = settings.Listen;
    }

    /// <summary>Where a <c>host:port</c> is really dialled after <c>--connect-to</c>.</summary>
    public (string Host, int Port) Resolve(string host, int port)
    {
        foreach (var rule in _connectTo)
        {
            if (rule.Matches(host, port))
            {
                return (rule.Address, rule.TargetPort);
            }
        }

        return (host, port);
    }

    /// <exception cref="UpstreamConnectException">The connection could not be made; see its <see cref="ConnectError"/>.</exception>
    public async Task<Stream> ConnectAsync(string host, int port, CancellationToken cancellationToken)
    {
        var (dialHost, dialPort) = Resolve(host, port);
        if (_parentProxy is not null)
        {
            var socket = await ConnectDirectAsync(_parentProxy.Host, _parentProxy.Port, checkDenied: false, cancellationToken);
            var stream = new NetworkStream(socket, ownsSocket: true);
            try
            {
                await ParentConnectAsync(stream, dialHost, dialPort, cancellationToken);
                return stream;
            }
            catch
            {
                await stream.DisposeAsync();
                throw;
            }
        }

        var direct = await ConnectDirectAsync(dialHost, dialPort, checkDenied: true, cancellationToken);
        return new NetworkStream(direct, ownsSocket: true);
    }

    private async Task<Socket> ConnectDirectAsync(string host, int port, bool checkDenied, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(s_connectTimeout);

        IPAddress[] addresses;
        if (IPAddress.TryParse(host, out var literal))
        {
            addresses = [literal];
        }
        else
        {
            try
            {
                addresses = await Dns.GetHostAddressesAsync(host, timeout.Token);
            }
            catch (SocketException ex)
            {
                throw new UpstreamConnectException(ConnectError.NameNotResolved, $"cannot resolve {host}: {ex.SocketErrorCode}", ex);
            }
            catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested)
            {
                throw new UpstreamConnectException(ConnectError.Timeout, $"resolving {host} timed out", ex);
            }
        }

        var allowed = checkDenied ? addresses.Where(a => !IsDenied(a, port)).ToArray() : addresses;
        if (allowed.Length == 0)
        {
            throw new UpstreamConnectException(addresses.Length == 0 ? ConnectError.NameNotResolved : ConnectError.Denied,
                addresses.Length == 0 ? $"{host} has no addresses" : $"{host} resolves only to refused addresses");
        }

        Exception? last = null;
        foreach (var address in allowed)
        {
            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(new IPEndPoint(address, port), timeout.Token);
                return socket;
            }
            catch (SocketException ex)
            {
                socket.Dispose();
                last = ex;
            }
            catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested)
            {
                socket.Dispose();
                throw new UpstreamConnectException(ConnectError.Timeout, $"connecting to {host}:{port} timed out", ex);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }

        throw new UpstreamConnectException(ConnectError.Unreachable, $"cannot connect to {host}:{port}: {(last as SocketException)?.SocketErrorCode}", last);
    }

    private static async Task ParentConnectAsync(Stream stream, string host, int port, CancellationToken cancellationToken)
    {
        var authority = host.Contains(':', StringComparison.Ordinal) ? $"[{host}]:{port}" : $"{host}:{port}";
        var request = Encoding.ASCII.GetBytes($"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
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
