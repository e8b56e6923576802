/* noop_agent: a true no-op agent. Exits 0 at once; ignores its arguments,
 * its environment and its stdin. The floor of what one task can cost. */
int main(void)
{
    return 0;
}
