using System.Net;
using System.Net.Sockets;

namespace MitmCache.Tests.Common;

/// <summary>Finds a free TCP port on 127.0.0.1. Racy by nature: callers that can bind port 0 should.</summary>
public static class FreePort
{
    public static int Get()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}
