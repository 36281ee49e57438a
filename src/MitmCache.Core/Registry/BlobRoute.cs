namespace MitmCache.Registry;

/// <summary><c>/v2/&lt;name&gt;/blobs/&lt;digest&gt;</c>, with both parts validated.</summary>
internal sealed record BlobRoute(string Name, Digest Digest) : RegistryRoute;
