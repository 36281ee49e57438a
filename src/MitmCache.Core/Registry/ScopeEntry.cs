namespace MitmCache.Registry;

/// <summary>
/// One resource scope of a token request, e.g. <c>repository:team/app:pull,push</c>
/// (distribution docs/spec/auth/scope.md). <see cref="Type"/> keeps a class suffix such as
/// <c>repository(plugin)</c>; <see cref="Name"/> may contain a host and port.
/// </summary>
internal sealed record ScopeEntry(string Type, string Name, IReadOnlyList<string> Actions)
{
    /// <summary>The scope in wire form, <c>type:name:action[,action]</c>.</summary>
    public override string ToString() => $"{Type}:{Name}:{string.Join(',', Actions)}";
}
