using System.Buffers.Binary;
using System.Collections;
using System.Globalization;
using System.Net;
using System.Runtime.InteropServices;

namespace MitmCache.Hosting;

/// <summary>A listening socket systemd passed to this process: its descriptor, its <c>FileDescriptorName=</c> and its address.</summary>
internal sealed record InheritedSocket(int Descriptor, string Name, IPEndPoint EndPoint);

/// <summary>
/// The sockets of socket activation (<c>LISTEN_PID</c>, <c>LISTEN_FDS</c>, <c>LISTEN_FDNAMES</c>, as
/// <c>sd_listen_fds(3)</c> reads them). The socket named <c>metrics</c> serves <c>--metrics-listen</c>;
/// the other one is the proxy port. systemd keeps its own copy of each socket open while the service
/// restarts, crashes or is upgraded, so clients wait in the backlog instead of being refused.
/// The descriptors keep the close-on-exec flag off, as systemd hands them over: .NET takes a socket
/// without that flag for a shared one and never shuts it down when it closes its copy
/// (SafeSocketHandle.Unix.cs, TryUnblockSocket), which would stop systemd's socket listening too.
/// </summary>
internal sealed partial class SystemdSockets
{
    /// <summary>The <c>FileDescriptorName=</c> of a socket for the monitoring port.</summary>
    public const string MetricsName = "metrics";

    private const int FirstDescriptor = 3; // SD_LISTEN_FDS_START
    private const int SolSocket = 1;
    private const int SoAcceptConn = 30;

    private SystemdSockets(InheritedSocket proxy, InheritedSocket? metrics)
    {
        Proxy = proxy;
        Metrics = metrics;
    }

    public InheritedSocket Proxy { get; }

    public InheritedSocket? Metrics { get; }

    /// <summary>
    /// The sockets passed to this process, or null when systemd passed none (then <c>run</c> binds its own).
    /// Problems (a count that is not a number, a socket that is not TCP, two proxy sockets) go to <paramref name="errors"/>.
    /// </summary>
    public static SystemdSockets? FromEnvironment(IDictionary environment, List<string> errors)
    {
        if (environment["LISTEN_FDS"] is not string countText || countText.Length == 0)
        {
            return null;
        }

        // LISTEN_PID names the process the sockets are for: not a child that inherited the variables.
        if (environment["LISTEN_PID"] is string pidText && pidText.Length > 0
            && (!int.TryParse(pidText, NumberStyles.None, CultureInfo.InvariantCulture, out var pid) || pid != Environment.ProcessId))
        {
            return null;
        }

        if (!int.TryParse(countText, NumberStyles.None, CultureInfo.InvariantCulture, out var count) || count < 1)
        {
            errors.Add($"LISTEN_FDS '{countText}': systemd passed no usable socket");
            return null;
        }

        var names = (environment["LISTEN_FDNAMES"] as string ?? "").Split(':');
        InheritedSocket? proxy = null;
        InheritedSocket? metrics = null;
        for (var i = 0; i < count; i++)
        {
            var descriptor = FirstDescriptor + i;
            var name = i < names.Length ? names[i] : "";
            if (LocalEndPoint(descriptor) is not { } endPoint)
            {
                errors.Add($"socket {descriptor} ({name}) from systemd: not a listening TCP socket; use ListenStream=ADDRESS:PORT with Accept=no");
                continue;
            }

            var socket = new InheritedSocket(descriptor, name, endPoint);
            if (name == MetricsName && metrics is null)
            {
                metrics = socket;
            }
            else if (name != MetricsName && proxy is null)
            {
                proxy = socket;
            }
            else
            {
                errors.Add($"socket {descriptor} ({name}, {endPoint}) from systemd: one proxy socket and at most one named '{MetricsName}' are served; give each socket unit one ListenStream=");
            }
        }

        if (proxy is null)
        {
            errors.Add($"systemd passed no proxy socket (only '{MetricsName}'); the proxy socket unit needs a ListenStream=");
        }

        return proxy is null ? null : new SystemdSockets(proxy, metrics);
    }

    /// <summary>Stops the variables from reaching anything this process starts, as <c>sd_listen_fds(1)</c> does.</summary>
    public static void ClearEnvironment()
    {
        Environment.SetEnvironmentVariable("LISTEN_PID", null);
        Environment.SetEnvironmentVariable("LISTEN_FDS", null);
        Environment.SetEnvironmentVariable("LISTEN_FDNAMES", null);
    }

    /// <summary>The address a listening TCP socket is bound to (<c>getsockname</c>), or null for any other kind of descriptor.</summary>
    private static unsafe IPEndPoint? LocalEndPoint(int descriptor)
    {
        var listening = 0;
        var size = (uint)sizeof(int);
        if (GetSockOpt(descriptor, SolSocket, SoAcceptConn, ref listening, ref size) != 0 || listening != 1)
        {
            return null; // not a socket, or not a listening one (ListenDatagram=, Accept=yes)
        }

        Span<byte> address = stackalloc byte[128];
        var length = (uint)address.Length;
        if (GetSockName(descriptor, address, ref length) != 0)
        {
            return null;
        }

        // struct sockaddr_in / sockaddr_in6: the family in host order, then the port in network order.
        var family = BitConverter.ToUInt16(address);
        var port = BinaryPrimitives.ReadUInt16BigEndian(address[2..]);
        return family switch
        {
            2 when length >= 8 => new IPEndPoint(new IPAddress(address.Slice(4, 4)), port), // AF_INET
            10 when length >= 28 => new IPEndPoint(new IPAddress(address.Slice(8, 16), BitConverter.ToUInt32(address[24..])), port), // AF_INET6
            _ => null,
        };
    }

    [LibraryImport("libc", EntryPoint = "getsockname", SetLastError = true)]
    private static partial int GetSockName(int socket, Span<byte> address, ref uint length);

    [LibraryImport("libc", EntryPoint = "getsockopt", SetLastError = true)]
    private static partial int GetSockOpt(int socket, int level, int option, ref int value, ref uint length);
}
