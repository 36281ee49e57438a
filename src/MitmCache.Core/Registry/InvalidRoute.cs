namespace MitmCache.Registry;

/// <summary>A malformed or hostile path. Answer with <see cref="RegistryError"/> using <see cref="ErrorCode"/>.</summary>
internal sealed record InvalidRoute(string ErrorCode, string Message) : RegistryRoute;
