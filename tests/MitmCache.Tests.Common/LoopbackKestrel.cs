using System.Net;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace MitmCache.Tests.Common;

/// <summary>Starts a minimal Kestrel on 127.0.0.1 (HTTPS, or plain HTTP without a certificate) that runs one request delegate.</summary>
public static class LoopbackKestrel
{
    /// <param name="port">0 for any free port, or a fixed port to come back on after a stop.</param>
    public static async Task<(WebApplication App, int Port)> StartAsync(
        X509Certificate2? certificate, int port, RequestDelegate handler, CancellationToken ct)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            ContentRootPath = AppContext.BaseDirectory,
        });
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel =>
            kestrel.Listen(IPAddress.Loopback, port, listen =>
            {
                if (certificate is not null)
                {
                    listen.UseHttps(certificate);
                }
            }));

        var app = builder.Build();
        app.Run(handler);
        await app.StartAsync(ct);

        var addresses = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>();
        return (app, new Uri(addresses.Addresses.First()).Port);
    }
}
